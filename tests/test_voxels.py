"""Volumes: the generated voxel solids, the reader of voxel folders, VoxNet, and tiny training runs on both."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import convzoo
from convzoo.cli import build_parser, main
from convzoo.data import load_data, voxels
from convzoo.data.voxels import VOXEL_CLASSES, generate_voxels, read_voxel_file, surface


def test_generator_is_seeded_balanced_binary_and_never_empty():
    grids, labels = generate_voxels(48, seed=5, size=16)
    again, again_labels = generate_voxels(48, seed=5, size=16)
    other, _ = generate_voxels(48, seed=6, size=16)
    assert grids.shape == (48, 16, 16, 16) and grids.dtype == bool
    assert np.array_equal(grids, again) and np.array_equal(labels, again_labels)
    assert not np.array_equal(grids, other)
    # 48 samples of 12 classes: 4 each
    assert len(VOXEL_CLASSES) >= 10 and np.bincount(labels, minlength=len(VOXEL_CLASSES)).tolist() == [4] * 12
    assert grids.reshape(48, -1).sum(1).min() > 0


def test_surface_of_a_solid_cube():
    grids = np.zeros((1, 5, 5, 5), dtype=bool)
    grids[0, 1:4, 1:4, 1:4] = True
    # a 3x3x3 cube: 27 voxels, of which only the centre has six occupied neighbours
    assert surface(grids).sum() == 26 and not surface(grids)[0, 2, 2, 2]
    full = np.ones((1, 3, 3, 3), dtype=bool)  # outside the grid counts as empty
    assert surface(full).sum() == 26


def test_voxnet_parameter_count_by_arithmetic():
    # conv1 32*1*5^3 + 32 = 4032; conv2 32*32*3^3 + 32 = 27680; 32^3 -> 14^3 -> 12^3 -> pool 6^3;
    # fc1 32*6^3*128 + 128 = 884864; fc2 128*10 + 10 = 1290
    expected = 4032 + 27680 + 884864 + 1290
    assert expected == 917866
    model = convzoo.create_model("voxnet", num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == expected
    # the paper's ModelNet40 net: fc2 128*40 + 40 = 5160
    assert sum(p.numel() for p in convzoo.create_model("voxnet", num_classes=40).parameters()) == 921736
    assert model(torch.zeros(2, 1, 32, 32, 32)).shape == (2, 10)


def test_voxnet_refuses_other_dimensions_and_sizes():
    with pytest.raises(ValueError, match="ndim must be 3"):
        convzoo.create_model("voxnet", ndim=2)
    with pytest.raises(ValueError, match="grids of 32x32x32 voxels"):
        convzoo.create_model("voxnet")(torch.zeros(1, 1, 24, 24, 24))
    small = convzoo.create_model("voxnet", input_size=(16, 16, 16), num_classes=3)
    assert small(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 3)


def _write_folder(root, per_class: int = 3, classes=("cube", "sphere")) -> None:
    grids, labels = generate_voxels(per_class * len(VOXEL_CLASSES), seed=0)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True)
        for i, grid in enumerate(grids[labels == VOXEL_CLASSES.index(name)]):
            if i % 2:
                np.savez(folder / f"{i}.npz", voxels=grid)
            else:
                np.save(folder / f"{i}.npy", grid[None].astype(np.float32))


def test_voxel_folder_reader_and_one_line_errors(tmp_path):
    _write_folder(tmp_path / "set", per_class=10)
    splits = load_data(f"voxels:{tmp_path / 'set'}")
    assert splits.class_names == ["cube", "sphere"] and splits.input_size == (1, 32, 32, 32)
    assert len(splits.train) + len(splits.dev) + len(splits.test) == 20
    x, y = splits.train[[0, 1]]
    assert x.shape == (2, 1, 32, 32, 32) and set(x.unique().tolist()) <= {-1.0, 1.0}
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((32, 32)))
    with pytest.raises(ValueError, match=r"bad.npy: expected a voxel grid \[D, H, W\].*\[32, 32\]"):
        read_voxel_file(bad)
    bad.write_bytes(b"not a grid at all")
    with pytest.raises(ValueError, match="bad.npy is not a numpy .npy voxel grid"):
        read_voxel_file(bad)
    np.save(bad, np.full((4, 4, 4), 255))
    with pytest.raises(ValueError, match=r"occupancies must lie in \[0, 1\]"):
        read_voxel_file(bad)
    np.save(tmp_path / "set" / "cube" / "odd.npy", np.zeros((16, 16, 16)))
    with pytest.raises(ValueError, match="odd.npy: grid of shape"):
        load_data(f"voxels:{tmp_path / 'set'}")


def _train(*argv: str) -> dict:
    args = build_parser().parse_args(["train", "--model", "voxnet", "--device", "cpu", "--threads", "1",
                                      "--seed", "0", "--batch-size", "16", *argv])
    return args.func(args)


def _error_line(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convzoo predict: error: ") and "allow_pickle" not in err[0], err
    return err[0]


def test_voxnet_trains_on_generated_voxels_and_predicts_npy_grids(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(voxels, "SPLIT_SIZES", {"train": 48, "dev": 12, "test": 24})
    run = tmp_path / "run"
    metrics = _train("--data", "voxels", "--epochs", "2", "--out", str(run))
    assert metrics["epochs"] == 2 and 0 <= metrics["test:accuracy"] <= 1
    assert np.isfinite(metrics["test:loss"])
    grids, labels = generate_voxels(2, seed=9)
    np.save(tmp_path / "dhw.npy", grids[0])
    np.save(tmp_path / "1dhw.npy", grids[1][None].astype(np.float32))
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "dhw.npy"), str(tmp_path / "1dhw.npy"), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.split(": ")[1].split(" (")[0] in VOXEL_CLASSES for line in lines)
    np.save(tmp_path / "rank.npy", np.zeros((32, 32), dtype=np.uint8))
    np.save(tmp_path / "size.npy", np.zeros((16, 16, 16), dtype=np.uint8))
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY\x01\x00 truncated")
    cases = {"rank.npy": "expected a voxel grid [D, H, W] or [1, D, H, W], got uint8 [32, 32]",
             "size.npy": "a grid of 16x16x16 voxels, but this run was trained on 32x32x32",
             "objects.npy": "not a numpy .npy voxel grid (an array of Python objects, which convzoo never unpickles)",
             "corrupt.npy": "not a numpy .npy voxel grid"}
    for name, expected in cases.items():
        line = _error_line(["predict", str(run), str(tmp_path / name)], capsys)
        assert name in line and expected in line, line


def test_summary_of_3d_models_at_volume_sizes(capsys):
    assert main(["summary", "voxnet", "--input-size", "1,32,32,32", "--num-classes", "12"]) == 0
    out = capsys.readouterr().out
    assert "32x14x14x14" in out and "32x6x6x6" in out and "918,124 parameters" in out  # 917,866 + 2 * 129
    assert main(["summary", "r3d_18", "--input-size", "1,32,32,32", "--depth", "1", "--num-classes", "12"]) == 0
    # a 3D ResNet on volumes: the stem keeps the depth, conv3_x .. conv5_x halve every axis; 32 -> 4 x 2 x 2
    assert "512x4x2x2" in capsys.readouterr().out


def test_voxnet_trains_on_a_voxel_folder(tmp_path):
    root = tmp_path / "modelnet"
    _write_folder(root / "train", per_class=6)
    _write_folder(root / "test", per_class=2)
    metrics = _train("--data", f"voxels:{root}", "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path / "run"))
    assert metrics["epochs"] == 1 and np.isfinite(metrics["test:loss"])
