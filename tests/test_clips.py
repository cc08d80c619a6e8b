"""Video clips: the Moving-MNIST-style generator (labels, motion, determinism, splits), the clip reader of predict,
a tiny run trained on clips and predictions from .npy clips and frame folders; bad inputs give one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.cli import main
from convzoo.data import clips, load_data
from convzoo.data.clips import (
    CLIP_CLASSES,
    DIRECTIONS,
    MovingDigitClips,
    check_clip_shape,
    clip_motion,
    digit_size,
    read_clip,
    render_clip,
)
from convzoo.models.video import temporal_kernel
from convzoo.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_render_clip_moves_the_digit_by_speed_pixels_a_frame():
    digit = np.full((2, 2), 200, dtype=np.uint8)
    # "right" (direction 0) from (row 1, column 0) at 1.5 px a frame: columns round(0), round(1.5) = 2, round(3) = 3
    clip = render_clip(digit, 0, (1.0, 0.0), 1.5, 3, 6)
    assert clip.shape == (3, 6, 6) and clip.dtype == np.uint8
    assert [np.flatnonzero(frame.any(0)).tolist() for frame in clip] == [[0, 1], [2, 3], [3, 4]]
    assert all(np.flatnonzero(frame.any(1)).tolist() == [1, 2] for frame in clip)
    up = render_clip(digit, DIRECTIONS.index("up"), (4.0, 2.0), 2.0, 3, 6)  # rows 4, 2, 0
    assert [np.flatnonzero(frame.any(1))[0] for frame in up] == [4, 2, 0]


def test_motion_keeps_the_digit_whole_on_the_canvas():
    rng = np.random.default_rng(0)
    room = 64 - digit_size(64)  # 64 - 28 = 36
    for direction in range(4):
        for _ in range(50):
            (y, x), speed = clip_motion(rng, direction, 16, 64)
            dy, dx = clips.STEPS[DIRECTIONS[direction]]
            end = (y + dy * speed * 15, x + dx * speed * 15)
            assert 1 <= speed <= room / 15 and all(-0.5 < v < room + 0.5 for v in (y, x, *end))
    with pytest.raises(ValueError, match="--frames 40 with --image-size 64: a 28 px digit .* at most 37 frames"):
        check_clip_shape(40, 64)


def _centroid(frame: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(frame)
    return np.array([rows.mean(), cols.mean()])


def test_clips_are_labelled_by_digit_and_direction_and_seeded():
    digits = torch.zeros(3, 7, 7, dtype=torch.uint8)
    digits[:, 2:5, 2:5] = 255
    dataset = MovingDigitClips(digits, torch.tensor([3, 7, 9]), count=12, seed=5, frames=4, canvas=16)
    assert len(CLIP_CLASSES) == 40 and CLIP_CLASSES[3 * 4 + 1] == "3-left"
    for index in range(12):
        clip, label = dataset.clip(index)
        again, _ = dataset.clip(index)
        assert np.array_equal(clip, again) and label % 4 == index % 4 and label // 4 in (3, 7, 9)
        # the centroid moves along the direction's step by at least 1 px a frame
        step = np.array(clips.STEPS[DIRECTIONS[index % 4]])
        assert (_centroid(clip[-1]) - _centroid(clip[0])) @ step >= 3
    x, y = dataset[[0, 1, 2]]
    assert x.shape == (3, 1, 4, 16, 16) and x.dtype == torch.float32 and y.tolist()[0] % 4 == 0
    other = MovingDigitClips(digits, torch.tensor([3, 7, 9]), count=12, seed=6, frames=4, canvas=16)
    assert not all(np.array_equal(dataset.clip(i)[0], other.clip(i)[0]) for i in range(12))


def test_moving_mnist_splits_from_the_bundled_digits(monkeypatch):
    monkeypatch.setattr(clips, "CLIP_COUNTS", {"train": 40, "dev": 8, "test": 8})
    monkeypatch.setattr(clips, "STATISTICS_CLIPS", 8)
    splits = load_data("moving-mnist", frames=6, image_size=24)
    assert splits.input_size == (1, 6, 24, 24) and splits.num_classes == 40 and len(splits.train) == 40
    assert splits.preprocess["kind"] == "clip" and splits.preprocess["frames"] == 6
    # the digits of the splits are disjoint: 1797 = 1258 train + 180 dev + 359 test
    assert [len(s.digits) for s in (splits.train, splits.dev, splits.test)] == [1258, 180, 359]
    x, _ = splits.train[list(range(8))]
    assert abs(x.mean().item()) < 0.5  # standardized with the training clips' statistics
    with pytest.raises(ValueError, match="--frames 4: only --data moving-mnist has clips"):
        load_data("digits", frames=4)


def test_moving_mnist_from_mnist_keeps_the_test_digits_unseen(shared_data, monkeypatch):
    monkeypatch.setattr(clips, "STATISTICS_CLIPS", 8)
    splits = load_data(f"moving-mnist:{shared_data / 'mnist'}")
    assert splits.input_size == (1, 16, 64, 64)
    assert [len(s.digits) for s in (splits.train, splits.dev, splits.test)] == [55000, 5000, 10000]
    assert splits.train.digits.shape[1:] == (28, 28)


def test_temporal_kernel_of_the_models():
    assert temporal_kernel(create_model("r2plus1d_18", width=4)) == 3
    assert temporal_kernel(create_model("voxnet")) == 5
    assert temporal_kernel(create_model("resnet20")) == 1  # 2D: no temporal axis


def test_read_clip_layouts(tmp_path):
    np.save(tmp_path / "thw.npy", np.full((5, 8, 8), 255, dtype=np.uint8))
    np.save(tmp_path / "cthw.npy", np.full((1, 5, 8, 8), 0.5, dtype=np.float32))
    assert read_clip(tmp_path / "thw.npy").shape == (1, 5, 8, 8) and read_clip(tmp_path / "thw.npy").max() == 255
    assert read_clip(tmp_path / "cthw.npy").max() == 127.5
    (tmp_path / "frames").mkdir()
    for t in range(4):
        Image.fromarray(np.full((6, 8), 60 * t, dtype=np.uint8)).save(tmp_path / "frames" / f"{t:03d}.png")
    clip = read_clip(tmp_path / "frames")
    assert clip.shape == (1, 4, 6, 8) and clip[0, :, 0, 0].tolist() == [0, 60, 120, 180]


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """A 1-step run of a width-4 R(2+1)D on 4-frame 16x16 clips (about 1 s)."""
    out = tmp_path_factory.mktemp("clips") / "run"
    counts, statistics = clips.CLIP_COUNTS, clips.STATISTICS_CLIPS
    clips.CLIP_COUNTS, clips.STATISTICS_CLIPS = {"train": 8, "dev": 4, "test": 4}, 4
    torch.set_num_threads(1)
    try:
        assert main(["train", "--model", "r2plus1d_18", "--width", "4", "--data", "moving-mnist", "--frames", "4",
                     "--image-size", "16", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress",
                     "--out", str(out)]) == 0
    finally:
        clips.CLIP_COUNTS, clips.STATISTICS_CLIPS = counts, statistics
    return out


def test_predict_on_npy_clips_and_frame_folders(clip_run, tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((4, 32, 32), dtype=np.uint8))  # resized to 16x16
    np.save(tmp_path / "b.npy", np.zeros((1, 6, 16, 16), dtype=np.float32))  # longer clips are kept whole
    (tmp_path / "frames").mkdir()
    for t in range(3):
        Image.new("L", (16, 16), 40 * t).save(tmp_path / "frames" / f"{t}.png")
    capsys.readouterr()
    paths = [str(tmp_path / name) for name in ("a.npy", "b.npy", "frames")]
    assert main(["predict", str(clip_run), *paths, "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.split(": ")[1].split(" (")[0] in CLIP_CLASSES for line in lines)


def _error_line(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()  # train prints "loading --data ..." first
    assert err and not any("Traceback" in line for line in err) and "allow_pickle" not in err[-1], err
    assert err[-1].startswith(f"convzoo {argv[0]}: error: "), err
    return err[-1]


def test_bad_clips_give_one_line(clip_run, tmp_path, capsys):
    np.save(tmp_path / "short.npy", np.zeros((2, 16, 16), dtype=np.uint8))
    np.save(tmp_path / "rank.npy", np.zeros((16, 16), dtype=np.uint8))
    np.save(tmp_path / "range.npy", np.full((4, 16, 16), 3.0))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    Image.new("L", (16, 16)).save(tmp_path / "mixed" / "0.png")
    Image.new("L", (16, 12)).save(tmp_path / "mixed" / "1.png")
    cases = {
        "short.npy": "a clip of 2 frame(s) is shorter than the model's temporal kernel of 3 frames",
        "rank.npy": "expected a clip [T, H, W] or [1, T, H, W], got uint8 [16, 16]",
        "range.npy": "holds intensities in [0, 1] (or uint8 pixels), got values from 3.0 to 3.0",
        "objects.npy": "is not a numpy .npy clip (an array of Python objects, which convzoo never unpickles)",
        "corrupt.npy": "is not a numpy .npy clip",
        "empty": "a clip folder holds frame images",
        "mixed": "frames of one clip must have one size; 0.png is 16x16, 1.png 16x12",
    }
    for name, expected in cases.items():
        line = _error_line(["predict", str(clip_run), str(tmp_path / name)], capsys)
        assert name in line and expected in line, line


def test_bad_clip_options_give_one_line(capsys):
    train = ["train", "--threads", "1", "--no-progress", "--epochs", "1"]
    line = _error_line([*train, "--model", "r3d_18", "--width", "4", "--data", "moving-mnist", "--frames", "2",
                        "--image-size", "16"], capsys)
    assert "--frames 2: clips shorter than r3d_18's temporal kernel of 3 frames" in line
    line = _error_line([*train, "--model", "resnet20", "--width", "4", "--data", "digits"], capsys)
    assert "--width 4: only the video ResNets (r3d_18, mc3_18, r2plus1d_18) take a width, not resnet20" in line
    assert "--frames must be at least 1" in _error_line([*train, "--frames", "0", "--data", "moving-mnist"], capsys)
