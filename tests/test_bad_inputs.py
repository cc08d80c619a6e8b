"""A corpus of bad inputs: each ends as one line ``convzoo CMD: error: ...`` with exit code 2 and no traceback on
the command line, and as a ``ValueError`` naming the argument in the Python API.

The files are tiny and made once per module (:func:`files`); a case that trains uses the 1-second model below.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from convzoo.cli import main

FAST = ["--epochs", "1", "--model", "spec:C-4-3-1-same,F,H-10", "--threads", "1", "--no-progress", "--batch-size", "2"]
TRAIN = ["train", *FAST, "--data", "digits"]
DETECTOR = ["train", "--model", "faster_rcnn_r50_fpn", "--data", "shapes", "--threads", "1", "--no-progress"]
MARKER = "pwned.marker"  # what the malicious pickles try to create (in the folder of the files)


class _Marker:
    """A pickle whose loading would create ``path`` (``os.system`` in a real attack)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (LeCun's format: 0x0000 08 ndim, big-endian sizes, the data)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _mnist(folder, images=40, labels=40, label=None, gz=False, **replace) -> None:
    """An MNIST folder of 8x8 images; ``replace`` maps a file stem to the bytes it holds instead."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 255, (images, 8, 8)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, labels),
              "t10k-images-idx3-ubyte": rng.integers(0, 255, (10, 8, 8)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10)}
    if label is not None:
        arrays["train-labels-idx1-ubyte"][3] = label
    for stem, array in arrays.items():
        data = replace.get(stem.replace("-", "_"), _idx(array))
        if gz:
            (folder / f"{stem}.gz").write_bytes(data if stem.replace("-", "_") in replace else gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def _cifar_batch(n=2, columns=3072, labels=None, key=b"data") -> bytes:
    data = np.random.default_rng(0).integers(0, 255, (n, columns)).astype(np.uint8)
    return pickle.dumps({key: data, b"labels": labels if labels is not None else [i % 10 for i in range(n)]})


def _cifar(folder, **replace) -> None:
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        if replace.get(name, b"") is not None:
            (folder / name).write_bytes(replace.get(name) or _cifar_batch())


def _png(path, size=(8, 8), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)


def _npz(path, **arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    # MNIST folders
    _mnist(root / "mnist_ok")
    full = gzip.compress(_idx(np.zeros((40, 8, 8))))
    _mnist(root / "mnist_gz_truncated", gz=True, train_images_idx3_ubyte=full[: len(full) // 2])
    _mnist(root / "mnist_not_gzip", gz=True, train_images_idx3_ubyte=_idx(np.zeros((40, 8, 8))))
    _mnist(root / "mnist_magic", train_images_idx3_ubyte=b"\x00\x00\x09\x03" + bytes(12 + 40 * 64))
    _mnist(root / "mnist_raw_truncated", train_images_idx3_ubyte=_idx(np.zeros((40, 8, 8)))[:-100])
    _mnist(root / "mnist_empty_file", train_images_idx3_ubyte=b"")
    _mnist(root / "mnist_label_200", label=200)
    _mnist(root / "mnist_test_label_200", t10k_labels_idx1_ubyte=_idx(np.full(10, 200)))
    _mnist(root / "mnist_count", labels=39)
    _mnist(root / "mnist_labels_as_images", train_images_idx3_ubyte=_idx(np.zeros(40)))
    _mnist(root / "mnist_images_as_labels", train_labels_idx1_ubyte=_idx(np.zeros((40, 8, 8))))
    (root / "mnist_missing").mkdir()
    (root / "mnist_missing" / "train-images-idx3-ubyte").write_bytes(_idx(np.zeros((40, 8, 8))))
    # CIFAR-10 python batches
    valid = _cifar_batch()
    _cifar(root / "cifar_garbage", data_batch_1=bytes(np.random.default_rng(1).integers(0, 255, 500, np.uint8)))
    _cifar(root / "cifar_truncated", data_batch_1=valid[: len(valid) // 2])
    _cifar(root / "cifar_missing", data_batch_3=None)
    _cifar(root / "cifar_no_data", data_batch_1=_cifar_batch(key=b"pixels"))
    _cifar(root / "cifar_columns", data_batch_1=_cifar_batch(columns=3000))
    _cifar(root / "cifar_label_12", data_batch_1=_cifar_batch(labels=[12, 0]))
    _cifar(root / "cifar_label_count", data_batch_1=_cifar_batch(labels=[1, 2, 3]))
    _cifar(root / "cifar_not_dict", data_batch_1=pickle.dumps([1, 2, 3]))
    _cifar(root / "cifar_pickle", data_batch_1=pickle.dumps(_Marker(str(root / MARKER))))
    (root / "cifar_bin").mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (root / "cifar_bin" / name).write_bytes(bytes(3073 * 2 + 7))
    (root / "cifar_nothing").mkdir()
    _cifar(root / "cifar_no_test", test_batch=None)
    for split in ("train", "test"):
        _png(root / "cifar_jpeg_sizes" / split / "cat" / "0.png", (32, 32))
        _png(root / "cifar_jpeg_sizes" / split / "dog" / "0.png", (16, 16))
    _png(root / "cifar_jpeg_no_test" / "train" / "cat" / "0.png", (32, 32))
    # ImageFolders
    (root / "if_empty").mkdir()
    for i in range(10):
        _png(root / "if_class_empty" / "a" / f"{i}.png")
    (root / "if_class_empty" / "b").mkdir()
    (root / "if_class_empty" / "b" / "notes.txt").write_text("no images here")
    for i in range(10):
        _png(root / "if_bad_image" / ("a" if i % 2 else "b") / f"{i}.png")
    (root / "if_bad_image" / "a" / "0.png").write_bytes(b"not a png")
    for i in range(4):
        (root / "if_all_bad" / "a").mkdir(parents=True, exist_ok=True)
        (root / "if_all_bad" / "a" / f"{i}.png").write_bytes(b"not a png")
    _png(root / "if_train_only" / "train" / "a" / "0.png")
    _png(root / "if_classes_differ" / "train" / "a" / "0.png")
    _png(root / "if_classes_differ" / "val" / "b" / "0.png")
    for split, name in (("train", "a"), ("val", "a"), ("test", "b")):
        _png(root / "if_test_classes_differ" / split / name / "0.png")
    (root / "if_a_file").write_text("not a folder")
    # MNIST-1D archives
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 40)), rng.integers(0, 10, 20)
    _npz(root / "m1d_no_x.npz", y=y, x_test=x, y_test=y)
    _npz(root / "m1d_3d.npz", x=x.reshape(20, 4, 10), y=y, x_test=x, y_test=y)
    _npz(root / "m1d_count.npz", x=x, y=y[:19], x_test=x, y_test=y)
    _npz(root / "m1d_label_10.npz", x=x, y=np.full(20, 10), x_test=x, y_test=y)
    _npz(root / "m1d_float_labels.npz", x=x, y=y + 0.5, x_test=x, y_test=y)
    _npz(root / "m1d_text.npz", x=np.full((20, 40), "a"), y=y, x_test=x, y_test=y)
    _npz(root / "m1d_lengths.npz", x=x, y=y, x_test=x[:, :30], y_test=y)
    _npz(root / "m1d_object.npz", x=np.array([_Marker(str(root / MARKER))] * 20, dtype=object), y=y, x_test=x,
         y_test=y)
    (root / "m1d_pickle.npz").write_bytes(pickle.dumps(_Marker(str(root / MARKER))))
    (root / "m1d_garbage.npz").write_bytes(b"garbage" * 10)
    _npz(root / "m1d_ok.npz", x=x, y=y, x_test=x, y_test=y)
    whole = (root / "m1d_ok.npz").read_bytes()
    (root / "m1d_truncated.npz").write_bytes(whole[: len(whole) // 2])
    (root / "m1d_folder").mkdir()
    # weights files
    (root / "zero.safetensors").write_bytes(b"")
    (root / "garbage.safetensors").write_bytes(b"\x07" * 64)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(100)}, str(root / "whole.safetensors"))
    whole = (root / "whole.safetensors").read_bytes()
    (root / "truncated.safetensors").write_bytes(whole[:-50])
    (root / "huge_header.safetensors").write_bytes((2 ** 62).to_bytes(8, "little") + b"{}")
    (root / "weights_dir").mkdir()
    (root / "zero.pth").write_bytes(b"")
    (root / "garbage.pth").write_bytes(b"garbage" * 10)
    torch.save(_Marker(str(root / MARKER)), root / "malicious.pth")
    (root / "malicious.pt").write_bytes(pickle.dumps(_Marker(str(root / MARKER))))
    # a regular file where a folder is expected
    (root / "afile").write_text("a file")
    # eval-detections
    gt = {"images": [{"id": 1, "width": 20, "height": 20}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0,
                           "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]}]}
    (root / "gt.json").write_text(json.dumps(gt))
    (root / "gt_list.json").write_text("[]")
    (root / "gt_no_images.json").write_text(json.dumps({"annotations": [], "categories": []}))
    det = {"image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "score": 0.9}
    dets = {
        "odd_polygon": [{**det, "segmentation": [[1, 2, 3, 4, 5]]}],
        "empty_polygon": [{**det, "segmentation": [[]]}],
        "no_polygon": [{**det, "segmentation": []}],
        "garbage_rle": [{**det, "segmentation": {"counts": 12345, "size": [20, 20]}}],
        "rle_size": [{**det, "segmentation": {"counts": "abc", "size": "big"}}],
        "not_list": {"image_id": 1},
        "no_score": [{k: v for k, v in det.items() if k != "score"}],
        "no_bbox": [{k: v for k, v in det.items() if k != "bbox"}],
        "bbox_3": [{**det, "bbox": [1, 2, 3]}],
        "bbox_text": [{**det, "bbox": ["a", 2, 3, 4]}],
        "score_text": [{**det, "score": "high"}],
        "unknown_image": [{**det, "image_id": 777}],
        "record_not_dict": [1, 2, 3],
        "keypoints_short": [{**det, "keypoints": [1, 2]}],
    }
    for name, value in dets.items():
        (root / f"dets_{name}.json").write_text(json.dumps(value))
    (root / "dets_garbage.json").write_text("{not json")
    (root / "dets_dir").mkdir()
    (root / "voc_garbage").mkdir()
    (root / "voc_garbage" / "a.xml").write_text("<annotation><object>")
    (root / "voc_no_ymax").mkdir()
    (root / "voc_no_ymax" / "a.xml").write_text(
        "<annotation><size><width>20</width><height>20</height></size><object><name>dog</name><bndbox>"
        "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object></annotation>")
    (root / "voc_dets.json").write_text(json.dumps([{**det, "image_id": "a"}]))
    # VOC folders for detection training
    for name, xml in (("vocdet_garbage", "<annotation><object>"), ("vocdet_no_ymax", (root / "voc_no_ymax" / "a.xml")
                                                                   .read_text())):
        (root / name / "Annotations").mkdir(parents=True)
        (root / name / "Annotations" / "a.xml").write_text(xml)
        _png(root / name / "JPEGImages" / "a.jpg", (20, 20))
    (root / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    # a trained run (about 2 s) and broken copies of it
    main(["train", *FAST, "--batch-size", "128", "--data", "digits", "--out", str(root / "run")])
    for name, broken in RUN_COPIES.items():
        shutil.copytree(root / "run", root / name)
        broken(root / name)
    return root


def _write(name: str, data: bytes | None):
    def broken(run) -> None:
        (run / name).unlink()
        if data is not None:
            (run / name).write_bytes(data)
    return broken


RUN_COPIES = {  # name -> what breaks the copy of the trained run
    "run_no_config": _write("config.json", None),
    "run_bad_config": _write("config.json", b"{not json"),
    "run_list_config": _write("config.json", b"[]"),
    "run_zero_last": _write("last.safetensors", b""),
    "run_garbage_best": _write("best.safetensors", b"\x07" * 64),
    "run_no_last": lambda run: [(run / n).unlink() for n in ("last.safetensors", "last.state.pt")],
    "run_garbage_state": _write("last.state.pt", b"garbage" * 10),
    "run_malicious_state": lambda run: torch.save(_Marker(str(run.parent / MARKER)), run / "last.state.pt"),
    "run_malicious_best_state": lambda run: torch.save(_Marker(str(run.parent / MARKER)), run / "best.state.pt"),
    "run_taken": lambda run: None,
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run folders a case might create land in its own temporary folder."""
    monkeypatch.chdir(tmp_path)


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """The exit code and the stderr lines of ``convzoo ARGV`` (argparse's errors exit through SystemExit)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip().splitlines()




def case(command: str, argv: list[str], *expected: str, marks=()):
    """One command-line case: ``argv`` after ``convzoo`` ({root}: the files), the words the line must hold."""
    text = " ".join(argv)
    for prefix, short in ((" ".join(TRAIN), "train"), (" ".join(DETECTOR), "train-detector"), (" ".join(FAST), "")):
        text = text.replace(prefix, short)
    return pytest.param(command, argv, expected, marks=marks, id=" ".join(text.replace("{root}/", "").split()))


def data(spec: str, *expected: str, extra=(), marks=()):
    return case("train", ["train", *FAST, *extra, "--data", spec], *expected, marks=marks)


CLI_CASES = [
    # MNIST / Fashion-MNIST IDX files
    data("mnist:{root}/mnist_gz_truncated", "train-images-idx3-ubyte.gz", "truncated"),
    data("mnist:{root}/mnist_not_gzip", "train-images-idx3-ubyte.gz", "not a gzip file"),
    data("fashion-mnist:{root}/mnist_not_gzip", "train-images-idx3-ubyte.gz", "not a gzip file"),
    data("mnist:{root}/mnist_magic", "train-images-idx3-ubyte", "IDX"),
    data("mnist:{root}/mnist_raw_truncated", "train-images-idx3-ubyte", "header says shape"),
    data("mnist:{root}/mnist_empty_file", "train-images-idx3-ubyte", "IDX"),
    data("mnist:{root}/mnist_label_200", "train-labels-idx1-ubyte", "label 200", "0..9"),
    data("mnist:{root}/mnist_count", "40 images", "39 labels", "train-labels-idx1-ubyte"),
    data("mnist:{root}/mnist_labels_as_images", "train-images-idx3-ubyte", "expected images"),
    data("mnist:{root}/mnist_images_as_labels", "train-labels-idx1-ubyte", "expected labels"),
    data("mnist:{root}/mnist_missing", "no train-labels-idx1-ubyte", "mnist_missing"),
    data("mnist:{root}/mnist_test_label_200", "t10k-labels-idx1-ubyte", "label 200"),
    data("fashion-mnist:{root}/mnist_label_200", "train-labels-idx1-ubyte", "label 200"),
    data("mnist:{root}/absent", "absent", "no such file or folder"),
    data("mnist:{root}/afile", "afile", "not a folder"),
    data("mnist", "--data mnist needs a folder"),
    # CIFAR-10 batches
    data("cifar10:{root}/cifar_garbage", "data_batch_1", "not a CIFAR-10 python batch"),
    data("cifar10:{root}/cifar_truncated", "data_batch_1", "not a CIFAR-10 python batch"),
    data("cifar10:{root}/cifar_missing", "data_batch_3", "No such file"),
    data("cifar10:{root}/cifar_no_data", "data_batch_1", "'data'"),
    data("cifar10:{root}/cifar_columns", "data_batch_1", "3072"),
    data("cifar10:{root}/cifar_label_12", "data_batch_1", "label 12", "0..9"),
    data("cifar10:{root}/cifar_label_count", "data_batch_1", "2 images", "3 labels"),
    data("cifar10:{root}/cifar_not_dict", "data_batch_1", "dict"),
    data("cifar10:{root}/cifar_pickle", "data_batch_1", "refusing to load"),
    data("cifar10:{root}/cifar_bin", "data_batch_1.bin", "3073"),
    data("cifar10:{root}/cifar_nothing", "cifar_nothing", "data_batch_1"),
    data("cifar10:{root}/cifar_no_test", "test_batch", "No such file"),
    data("cifar10:{root}/cifar_jpeg_sizes", "differ in size"),
    data("cifar10:{root}/cifar_jpeg_no_test", "cifar_jpeg_no_test/test"),
    data("cifar10", "--data cifar10 needs a folder"),
    # ImageFolders
    data("imagefolder:{root}/if_empty", "if_empty", "no class subfolders"),
    data("imagefolder:{root}/if_class_empty", "if_class_empty/b", "no image files"),
    data("imagefolder:{root}/if_bad_image", "cannot decode image", "0.png", "--skip-bad-images"),
    data("imagefolder:{root}/if_all_bad", "if_all_bad", "no image", extra=["--skip-bad-images"]),
    data("imagefolder:{root}/if_train_only", "has no val/, dev/ or test/"),
    data("imagefolder:{root}/if_classes_differ", "class folders", "differ"),
    data("imagefolder:{root}/if_test_classes_differ", "class folders", "differ"),
    data("imagefolder:{root}/if_a_file", "if_a_file", "not a folder"),
    data("imagefolder:{root}/absent", "absent", "no such file or folder"),
    data("imagefolder", "--data imagefolder needs a folder"),
    # MNIST-1D archives
    data("mnist1d:{root}/m1d_no_x.npz", "m1d_no_x.npz", "'x'", "x_test"),
    data("mnist1d:{root}/m1d_3d.npz", "m1d_3d.npz", "'x'", "[N, L]"),
    data("mnist1d:{root}/m1d_count.npz", "m1d_count.npz", "20", "19"),
    data("mnist1d:{root}/m1d_label_10.npz", "m1d_label_10.npz", "label 10", "0..9"),
    data("mnist1d:{root}/m1d_float_labels.npz", "m1d_float_labels.npz", "integer"),
    data("mnist1d:{root}/m1d_text.npz", "m1d_text.npz", "'x'", "numbers"),
    data("mnist1d:{root}/m1d_lengths.npz", "m1d_lengths.npz", "'x_test'", "40", "30"),
    data("mnist1d:{root}/m1d_object.npz", "m1d_object.npz", "pickled", "never"),
    data("mnist1d:{root}/m1d_pickle.npz", "m1d_pickle.npz", "not a numpy"),
    data("mnist1d:{root}/m1d_garbage.npz", "m1d_garbage.npz", "not a numpy"),
    data("mnist1d:{root}/m1d_truncated.npz", "m1d_truncated.npz", "not a numpy"),
    data("mnist1d:{root}/m1d_folder", "mnist1d.npz"),
    data("mnist1d:{root}/absent.npz", "absent.npz", "no such file or folder"),
    data("banana", "unknown data set 'banana'", "digits"),
    # summary and models
    case("summary", ["summary", "resnet18", "--input-size", "3,0,0"], "--input-size", "positive sizes"),
    case("summary", ["summary", "resnet18", "--input-size", "3,a,b"], "--input-size", "3,224,224"),
    case("summary", ["summary", "resnet18", "--input-size", "3,1,1,1,1"], "--input-size", "C,H,W"),
    case("summary", ["summary", "resnet18", "--num-classes", "-5"], "--num-classes", "positive integer"),
    case("summary", ["summary", "resnet18", "--num-classes", "0"], "--num-classes", "positive integer"),
    case("summary", ["summary", "resnet18", "--num-classes", "2.5"], "--num-classes", "positive integer"),
    case("summary", ["summary", "resnet18", "--in-chans", "0"], "--in-chans", "positive integer"),
    case("summary", ["summary", "resnet18", "--depth", "0"], "--depth", "positive integer"),
    case("summary", ["summary", "no_such_model"], "no_such_model"),
    case("summary", ["summary", "spec:Q-1"], "Q-1"),
    # --input-size 1,32,32, 3,32 and 3,8,8,8 are valid: they set in_chans and the spatial axes (1D, 3D)
    case("summary", ["summary", "resnet18", "--in-chans", "1", "--input-size", "3,32,32"], "--in-chans 1",
         "disagrees with --input-size 3,32,32"),
    case("summary", ["summary", "googlenet", "--input-size", "3,8,8"], "--input-size 3,8,8", "googlenet",
         "too small"),
    case("summary", ["summary", "faster_rcnn_r50_fpn"], "faster_rcnn_r50_fpn is a detector"),
    case("models", ["models", "no_such*"], "no model matches 'no_such*'"),
    case("models", ["models", "--kind", "banana"], "--kind", "banana"),
    case("models", ["models", "resnet*", "--kind", "detector"], "no model of kind detector"),
    # train options
    case("train", [*TRAIN, "--threads", "-1"], "--threads must be positive"),
    case("train", [*TRAIN, "--threads", "0"], "--threads must be positive"),
    case("train", [*TRAIN, "--device", "banana"], "--device", "banana"),
    case("train", [*TRAIN, "--device", "cuda:banana"], "cuda:banana"),
    case("train", [*TRAIN, "--label-smoothing", "5"], "--label-smoothing", "5"),
    case("train", [*TRAIN, "--label-smoothing", "-0.1"], "--label-smoothing", "-0.1"),
    case("train", [*TRAIN, "--label-smoothing", "nan"], "--label-smoothing", "nan"),
    case("train", [*TRAIN, "--aux-weight", "-1"], "--aux-weight", "-1"),
    case("train", [*TRAIN, "--grad-clip", "-1"], "--grad-clip must be a positive number"),
    case("train", [*TRAIN, "--grad-clip", "0"], "--grad-clip must be a positive number"),
    case("train", [*TRAIN, "--warmup", "-5"], "--warmup must be a finite number >= 0"),
    case("train", [*TRAIN, "--weight-decay", "-1"], "--weight-decay must be a finite number >= 0"),
    case("train", [*TRAIN, "--weight-decay", "inf"], "--weight-decay must be a finite number >= 0"),
    case("train", [*TRAIN, "--image-size", "0"], "--image-size must be positive"),
    case("train", [*TRAIN, "--image-size", "-3"], "--image-size must be positive"),
    case("train", [*TRAIN, "--lr", "nan"], "--lr must be a finite number >= 0"),
    case("train", [*TRAIN, "--lr", "inf"], "--lr must be a finite number >= 0"),
    case("train", [*TRAIN, "--lr", "1e39"], "--lr", "1e+39"),
    case("train", [*TRAIN, "--momentum", "-1"], "--momentum must be a finite number >= 0"),
    case("train", [*TRAIN, "--gamma", "nan"], "--gamma must be a finite number >= 0"),
    case("train", [*TRAIN, "--epochs", "0"], "--epochs must be positive"),
    case("train", [*TRAIN, "--epochs", "-2"], "--epochs must be positive"),
    case("train", [*TRAIN, "--epochs", "two"], "--epochs", "invalid int value"),
    case("train", [*TRAIN, "--batch-size", "0"], "--batch-size must be positive"),
    case("train", [*TRAIN, "--milestones", "2"], "--milestones must be fractions"),
    case("train", [*TRAIN, "--milestones", "0.5,x"], "--milestones", "comma-separated numbers"),
    case("train", [*TRAIN, "--milestones", "0,0.5"], "--milestones must be fractions"),
    case("train", [*TRAIN, "--max-minutes", "-1"], "--max-minutes must be a finite number >= 0"),
    case("train", [*TRAIN, "--max-minutes", "nan"], "--max-minutes must be a finite number >= 0"),
    case("train", [*TRAIN, "--eval-every", "0"], "--eval-every must be positive"),
    case("train", [*TRAIN, "--workers", "-1"], "--workers must be a finite number >= 0"),
    case("train", [*TRAIN, "--optimizer", "banana"], "--optimizer", "invalid choice"),
    case("train", [*TRAIN, "--schedule", "banana"], "--schedule", "invalid choice"),
    case("train", [*TRAIN, "--amp", "fp8"], "--amp", "invalid choice"),
    case("train", [*TRAIN, "--model", "no_such_model"], "no_such_model"),
    case("train", [*TRAIN, "--model", "spec:Q-1"], "Q-1"),
    case("train", ["train", "--resume", "{root}/absent"], "is not a convzoo run folder"),
    case("train", ["train", "--resume", "{root}/afile"], "is not a convzoo run folder"),
    case("train", ["train", "--resume", "{root}/mnist_ok", "--epochs", "2"], "is not a convzoo run folder"),
    case("train", ["train", "--resume", "{root}/absent", "--lr", "0.1"], "--lr cannot change when resuming"),
    # detection options for a classifier and vice versa
    case("train", [*TRAIN, "--small"], "--small", "detection option"),
    case("train", [*TRAIN, "--hflip", "0.3"], "--hflip", "detection option"),
    case("train", [*TRAIN, "--anchor-sizes", "16,32,64,128,256"], "--anchor-sizes", "detection option"),
    case("train", [*TRAIN, "--score-thresh", "0.5"], "--score-thresh", "detection option"),
    case("train", [*DETECTOR, "--label-smoothing", "0.1"], "--label-smoothing", "classification option"),
    case("train", [*DETECTOR, "--freeze-bn"], "--freeze-bn", "classification option"),
    case("train", [*DETECTOR, "--data", "digits"], "digits"),
    case("train", [*TRAIN, "--data", "shapes"], "shapes"),
    # detection option values
    case("train", [*DETECTOR, "--hflip", "2"], "--hflip must be a probability"),
    case("train", [*DETECTOR, "--hflip", "nan"], "--hflip must be a probability"),
    case("train", [*DETECTOR, "--score-thresh", "2"], "--score-thresh must be in [0, 1]"),
    case("train", [*DETECTOR, "--score-thresh", "-0.1"], "--score-thresh must be in [0, 1]"),
    case("train", [*DETECTOR, "--train-size", "-1"], "--train-size must be >= 0"),
    case("train", [*DETECTOR, "--val-size", "-1"], "--val-size must be >= 0"),
    case("train", [*DETECTOR, "--anchor-sizes", "0,1"], "--anchor-sizes must be positive"),
    case("train", [*DETECTOR, "--anchor-sizes", "1,x"], "--anchor-sizes", "comma-separated integers"),
    case("train", [*DETECTOR, "--min-size", "0"], "--min-size must be positive"),
    case("train", [*DETECTOR, "--max-size", "-5"], "--max-size must be positive"),
    case("train", [*DETECTOR, "--roi-method", "banana"], "--roi-method", "invalid choice"),
    case("train", [*DETECTOR, "--data", "coco:{root}/absent.json:{root}"], "absent.json"),
    case("train", [*DETECTOR, "--data", "coco:{root}/gt.json"], "coco:ANNOTATIONS.json:IMAGE_DIR"),
    case("train", [*DETECTOR, "--data", "voc:{root}/absent"], "absent"),
    *(case("train", [*DETECTOR, "--train-size", "2", "--val-size", "1", "--batch-size", "1", *extra], *words,
           marks=marks) for extra, words, marks in [
        (["--small", "--anchor-sizes", "32,64"], ["anchor_sizes", "P2..P6"], ()),
        (["--small", "--backbone", "no_such_model"], ["no_such_model"], ()),
        (["--small", "--proposals", "{root}/absent.json"], ["absent.json"], ()),
        (["--small", "--backbone-weights", "{root}/absent.pth"], ["absent.pth"], ()),
        (["--backbone", "resnet18", "--trainable-layers", "9"], ["trainable_layers", "[0, 5]"], ()),
        (["--small", "--min-size", "64", "--max-size", "32"], ["--max-size"], ()),
    ]),
    # output paths
    case("train", [*TRAIN, "--out", "{root}/afile/run"], "afile"),
    case("train", [*TRAIN, "--out", "{root}/afile"], "afile"),
    # --pretrained files
    case("train", [*TRAIN, "--pretrained", "{root}/zero.safetensors"], "zero.safetensors"),
    case("train", [*TRAIN, "--pretrained", "{root}/garbage.safetensors"], "garbage.safetensors"),
    case("train", [*TRAIN, "--pretrained", "{root}/truncated.safetensors"], "truncated.safetensors"),
    case("train", [*TRAIN, "--pretrained", "{root}/huge_header.safetensors"], "huge_header.safetensors"),
    case("train", [*TRAIN, "--pretrained", "{root}/weights_dir"], "weights_dir"),
    case("train", [*TRAIN, "--pretrained", "{root}/absent.safetensors"], "absent.safetensors"),
    case("train", [*TRAIN, "--pretrained", "{root}/zero.pth"], "zero.pth"),
    case("train", [*TRAIN, "--pretrained", "{root}/garbage.pth"], "garbage.pth"),
    case("train", [*TRAIN, "--pretrained", "{root}/malicious.pth"], "malicious.pth"),
    case("train", [*TRAIN, "--pretrained", "{root}/malicious.pt"], "malicious.pt"),
    case("train", [*TRAIN, "--pretrained", "{root}/whole.safetensors"], "whole.safetensors"),
    # eval-detections
    *(case("eval-detections", ["eval-detections", "--gt", "{root}/gt.json", "--dets", f"{{root}}/dets_{name}.json",
                               *extra], *words, marks=marks)
      for name, extra, words, marks in [
          ("odd_polygon", ["--iou-type", "segm"], ["detections[0]", "polygon"], ()),
          ("empty_polygon", ["--iou-type", "segm"], ["detections[0]", "polygon"], ()),
          ("no_polygon", ["--iou-type", "segm"], ["detections[0]", "segmentation"], ()),
          ("garbage_rle", ["--iou-type", "segm"], ["detections[0]", "RLE"], ()),
          ("rle_size", ["--iou-type", "segm"], ["detections[0]", "size"], ()),
          ("not_list", [], ["detections must be a list"], ()),
          ("no_score", [], ["detections[0]", "no field 'score'"], ()),
          ("no_bbox", [], ["detections[0]", "no field 'bbox'"], ()),
          ("bbox_3", [], ["detections[0]", "'bbox' must be 4 numbers"], ()),
          ("bbox_text", [], ["detections[0]", "'bbox' must be 4 numbers"], ()),
          ("score_text", [], ["detections[0]", "'score' must be a number"], ()),
          ("unknown_image", [], ["detections[0]", "image_id 777"], ()),
          ("record_not_dict", [], ["detections[0]"], ()),
          ("keypoints_short", ["--iou-type", "keypoints"], ["keypoints"], ()),
          ("garbage", [], ["dets_garbage.json", "not JSON"], ()),
      ]),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt.json", "--dets", "{root}/dets_dir"], "dets_dir"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt.json", "--dets", "{root}/absent.json"],
         "absent.json"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt_list.json", "--dets", "{root}/dets_garbage.json"],
         "gt_list.json", "ground truth must be a COCO dict"),  # the ground truth is read first
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt_list.json", "--dets", "{root}/voc_dets.json"],
         "ground truth must be a COCO dict"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt_no_images.json", "--dets",
                             "{root}/voc_dets.json"], "images"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt.json", "--dets", "{root}/voc_dets.json",
                             "--protocol", "voc", "--iou-threshold", "nan"], "--iou-threshold", "(0, 1]"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt.json", "--dets", "{root}/voc_dets.json",
                             "--protocol", "voc", "--iou-threshold", "2"], "--iou-threshold", "(0, 1]"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/gt.json", "--dets", "{root}/voc_dets.json",
                             "--protocol", "voc", "--iou-type", "segm"], "VOC protocols evaluate boxes only"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/voc_garbage", "--dets", "{root}/voc_dets.json",
                             "--protocol", "voc"], "a.xml"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/voc_no_ymax", "--dets", "{root}/voc_dets.json",
                             "--protocol", "voc"], "a.xml", "ymax"),
    case("eval-detections", ["eval-detections", "--gt", "{root}/voc_no_ymax", "--dets", "{root}/voc_dets.json",
                             "--class-names", "{root}/absent.txt"], "absent.txt"),
    # run folders: resume, evaluate, predict
    case("train", ["train", "--resume", "{root}/run_no_config"], "run_no_config", "is not a convzoo run folder"),
    case("train", ["train", "--resume", "{root}/run_bad_config"], "run_bad_config/config.json", "not valid JSON"),
    case("train", ["train", "--resume", "{root}/run_list_config"], "run_list_config/config.json",
         "expected a JSON object"),
    case("train", ["train", "--resume", "{root}/run_zero_last", "--epochs", "2"], "run_zero_last"),
    case("train", ["train", "--resume", "{root}/run_no_last", "--epochs", "2"], "run_no_last", "last"),
    case("train", ["train", "--resume", "{root}/run_garbage_state", "--epochs", "2"], "last.state.pt"),
    case("train", ["train", "--resume", "{root}/run_malicious_state", "--epochs", "2"], "last.state.pt"),
    case("train", ["train", "--resume", "{root}/run", "--lr", "0.5"], "--lr cannot change when resuming"),
    case("train", ["train", "--resume", "{root}/run", "--epochs", "0"], "--epochs must be positive"),
    case("train", [*TRAIN, "--batch-size", "128", "--out", "{root}/run_taken"], "run_taken"),
    case("evaluate", ["evaluate", "{root}/run_no_config"], "is not a convzoo run folder"),
    case("evaluate", ["evaluate", "{root}/run_bad_config"], "not valid JSON"),
    case("evaluate", ["evaluate", "{root}/run_garbage_best"], "best.safetensors"),
    case("evaluate", ["evaluate", "{root}/run_malicious_best_state"], "best.state.pt"),
    case("evaluate", ["evaluate", "{root}/run", "--checkpoint", "middle"], "--checkpoint", "invalid choice"),
    case("evaluate", ["evaluate", "{root}/run", "--split", "banana"], "--split", "invalid choice"),
    case("evaluate", ["evaluate", "{root}/run", "--data", "mnist:{root}/mnist_label_200"], "label 200"),
    case("predict", ["predict", "{root}/run", "{root}/cut.png"], "cannot decode image", "cut.png"),
    case("predict", ["predict", "{root}/run", "{root}/m1d_garbage.npz"], "m1d_garbage.npz"),
    case("predict", ["predict", "{root}/run", "{root}/weights_dir"], "weights_dir"),
    case("predict", ["predict", "{root}/run", "{root}/cut.png", "--top", "0"], "--top must be at least 1"),
    # detection data files
    *(case("train", [*DETECTOR, "--small", "--batch-size", "1", "--data", f"voc:{{root}}/{name}"], "a.xml", *words)
      for name, words in (("vocdet_garbage", ()), ("vocdet_no_ymax", ("ymax",)))),
    # evaluate and predict
    case("evaluate", ["evaluate", "{root}/absent"], "is not a convzoo run folder"),
    case("evaluate", ["evaluate", "{root}/mnist_ok"], "is not a convzoo run folder"),
    case("predict", ["predict", "{root}/absent", "{root}/if_train_only/train/a/0.png"], "is not a convzoo run folder"),
    case("predict", ["predict", "{root}/absent", "{root}/x.png"], "x.png"),
]


@pytest.mark.parametrize(("command", "argv", "expected"), CLI_CASES)
def test_cli_error_is_one_line_with_exit_code_2(files, capsys, command, argv, expected):
    code, err = run_cli([word.format(root=files) for word in argv], capsys)
    assert not any("Traceback" in line for line in err), "\n".join(err)
    assert code == 2, err
    assert err and err[-1].startswith(f"convzoo {command}: error: "), err
    for words in expected:
        assert words.format(root=files) in err[-1], err[-1]
    assert "allow_pickle" not in err[-1]
    if command == "predict":
        assert "--skip-bad-images" not in err[-1]  # an option predict does not have
    assert not (files / MARKER).exists(), "a user file was unpickled"


# The Python API: the same values raise a ValueError (or a subclass) with the words of the command line.

def _config(**kwargs):
    from convzoo.train.config import TrainConfig

    return TrainConfig(**kwargs)


def _classification(**kwargs):
    from convzoo.tasks import ClassificationOptions

    return ClassificationOptions(**kwargs)


def _detection(**kwargs):
    from convzoo.tasks import DetectionOptions

    return DetectionOptions(**kwargs)


def _model(name="resnet18", **kwargs):
    from convzoo.registry import create_model

    return create_model(name, **kwargs)


def api(function, kwargs: dict, *expected: str, marks=()):
    text = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return pytest.param(function, kwargs, expected, marks=marks, id=f"{function.__name__.strip('_')}({text})")


API_CASES = [
    api(_config, {"threads": -1}, "--threads must be positive"),
    api(_config, {"threads": 0}, "--threads must be positive"),
    api(_config, {"device": "banana"}, "--device", "banana"),
    api(_config, {"grad_clip": -1.0}, "--grad-clip must be a positive number"),
    api(_config, {"grad_clip": float("nan")}, "--grad-clip must be a positive number"),
    api(_config, {"warmup": -5.0}, "--warmup must be a finite number >= 0"),
    api(_config, {"weight_decay": -1.0}, "--weight-decay must be a finite number >= 0"),
    api(_config, {"image_size": 0}, "--image-size must be positive"),
    api(_config, {"lr": float("nan")}, "--lr must be a finite number >= 0"),
    api(_config, {"lr": -0.1}, "--lr must be a finite number >= 0"),
    api(_config, {"lr": 1e39}, "--lr"),
    api(_config, {"epochs": 0}, "--epochs must be positive"),
    api(_config, {"epochs": 2.5}, "--epochs", "integer"),
    api(_config, {"epochs": "3"}, "--epochs", "integer"),
    api(_config, {"batch_size": 0}, "--batch-size must be positive"),
    api(_config, {"milestones": [2.0]}, "--milestones must be fractions"),
    api(_config, {"max_minutes": -1.0}, "--max-minutes must be a finite number >= 0"),
    api(_config, {"eval_every": 0}, "--eval-every must be positive"),
    api(_config, {"workers": -1}, "--workers must be a finite number >= 0"),
    api(_config, {"optimizer": "banana"}, "--optimizer must be one of"),
    api(_config, {"schedule": "banana"}, "--schedule must be one of"),
    api(_config, {"amp": "fp8"}, "--amp must be one of"),
    api(_config, {"pretrained_source": "banana"}, "--pretrained-source must be"),
    api(_config, {"classification": {"label_smoothing": 5.0}}, "--label-smoothing must be in [0, 1)"),
    api(_config, {"classification": {"banana": 1}}, "unknown classification option(s) banana"),
    api(_config, {"detection": {"hflip": 2.0}}, "--hflip must be a probability"),
    api(_classification, {"label_smoothing": 5.0}, "--label-smoothing must be in [0, 1)"),
    api(_classification, {"label_smoothing": float("nan")}, "--label-smoothing must be in [0, 1)"),
    api(_classification, {"aux_weight": -1.0}, "--aux-weight must be a finite number >= 0"),
    api(_detection, {"hflip": 2.0}, "--hflip must be a probability"),
    api(_detection, {"score_thresh": 2.0}, "--score-thresh must be in [0, 1]"),
    api(_detection, {"train_size": -1}, "--train-size must be >= 0"),
    api(_detection, {"anchor_sizes": [0, 1]}, "--anchor-sizes must be positive"),
    api(_detection, {"roi_method": "banana"}, "--roi-method must be align or pool"),
    api(_detection, {"min_size": 0}, "--min-size must be positive"),
    api(_model, {"num_classes": 0}, "num_classes must be a positive integer"),
    api(_model, {"num_classes": -5}, "num_classes must be a positive integer"),
    api(_model, {"num_classes": 2.5}, "num_classes must be a positive integer"),
    api(_model, {"num_classes": True}, "num_classes must be a positive integer"),
    api(_model, {"in_chans": 0}, "in_chans must be a positive integer"),
    api(_model, {"pretrained": True}, "never downloads weights"),
    api(_model, {"name": "spec:Q-1"}, "Q-1"),
]


@pytest.mark.parametrize(("function", "kwargs", "expected"), API_CASES)
def test_api_raises_value_error(function, kwargs, expected):
    with pytest.raises(ValueError) as error:
        function(**kwargs)
    for words in expected:
        assert words in str(error.value), str(error.value)


def test_models_into_a_closed_pipe_is_quiet():
    """``convzoo models | head -0``: the reader is gone before the first line; no BrokenPipeError traceback."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "convzoo", "models"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    process.stdout.close()
    stderr = process.communicate(timeout=60)[1].decode()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode in (0, 1), stderr


def test_api_unknown_model_names_it():
    from convzoo.registry import create_model

    with pytest.raises(KeyError, match="no_such_model"):
        create_model("no_such_model")


def _file_case(function: str, name: str, *expected: str):
    return pytest.param(function, name, expected, id=f"{function}({name})")


@pytest.mark.parametrize(("function", "name", "expected"), [
    _file_case("read_idx", "mnist_gz_truncated/train-images-idx3-ubyte.gz", "truncated"),
    _file_case("read_idx", "mnist_not_gzip/train-images-idx3-ubyte.gz", "not a gzip file"),
    _file_case("read_idx", "mnist_magic/train-images-idx3-ubyte", "not an unsigned-byte IDX file"),
    _file_case("read_cifar_python_batch", "cifar_pickle/data_batch_1", "refusing to load"),
    _file_case("read_cifar_python_batch", "cifar_garbage/data_batch_1", "not a CIFAR-10 python batch"),
    _file_case("read_cifar_binary_batch", "cifar_bin/data_batch_1.bin", "3073"),
    _file_case("read_npz", "m1d_object.npz", "pickled Python objects", "never"),
    _file_case("read_npz", "m1d_pickle.npz", "not a numpy .npz archive"),
    _file_case("read_npz", "m1d_truncated.npz", "not a numpy .npz archive"),
])
def test_data_readers_raise_value_error_naming_the_file(files, function, name, expected):
    from convzoo.data import formats

    with pytest.raises(ValueError) as error:
        getattr(formats, function)(files / name)
    assert name.split("/")[-1] in str(error.value), str(error.value)
    for words in expected:
        assert words in str(error.value), str(error.value)
    assert "allow_pickle" not in str(error.value)
    assert not (files / MARKER).exists()


# Detector inputs: targets, images, NMS.

@pytest.fixture(scope="module")
def detector():
    from convzoo.detection.models import HeadWidths
    from convzoo.registry import create_model

    torch.manual_seed(0)
    model = create_model("faster_rcnn_r50_fpn", backbone="resnet18", num_classes=3, min_size=64, max_size=64,
                         widths=HeadWidths(fpn=16, box=32, mask=16, keypoint=16))
    return model.train()


GOOD_BOX = [[4.0, 4.0, 20.0, 20.0]]


def _target(boxes=GOOD_BOX, labels=(1,), **extra) -> dict:
    boxes = boxes if isinstance(boxes, torch.Tensor) else torch.tensor(boxes, dtype=torch.float32)
    labels = labels if isinstance(labels, torch.Tensor) else torch.tensor(labels, dtype=torch.int64)
    return {"boxes": boxes, "labels": labels, **extra}


def target_case(name: str, targets, *expected: str, image=None):
    return pytest.param(targets, image, expected, id=name)


TARGET_CASES = [
    target_case("nan box", [_target([[4.0, float("nan"), 20.0, 20.0]])], "non-finite box", "image 0"),
    target_case("inf box", [_target([[4.0, 4.0, float("inf"), 20.0]])], "non-finite box", "image 0"),
    target_case("x2 < x1", [_target([[20.0, 4.0, 4.0, 20.0]])], "degenerate box", "x2 <= x1", "image 0"),
    target_case("empty box", [_target([[4.0, 4.0, 4.0, 20.0]])], "degenerate box", "image 0"),
    target_case("boxes [G, 3]", [_target([[4.0, 4.0, 20.0]])], "Tensor[G, 4]", "image 0"),
    target_case("float labels", [_target(labels=torch.tensor([1.0]))], "integer", "torch.float32", "image 0"),
    target_case("bool labels", [_target(labels=torch.tensor([True]))], "integer", "torch.bool", "image 0"),
    target_case("label 3 of 3 classes", [_target(labels=(3,))], "label 3", "1..2"),
    target_case("label 0 (background)", [_target(labels=(0,))], "label 0", "background"),
    target_case("label -1", [_target(labels=(-1,))], "label -1", "1..2"),
    target_case("2 labels for 1 box", [_target(labels=(1, 2))], "Tensor[G]", "1 boxes"),
    target_case("no labels", [{"boxes": torch.tensor(GOOD_BOX)}], "'boxes' and 'labels'", "image 0"),
    target_case("target not a dict", [torch.tensor(GOOD_BOX)], "must be a dict", "image 0"),
    target_case("masks of 2 for 1 box", [_target(masks=torch.zeros(2, 32, 32, dtype=torch.uint8))], "masks",
                "Tensor[G, H, W]"),
    target_case("keypoints [G, K]", [_target(keypoints=torch.zeros(1, 17))], "keypoints", "Tensor[G, K, 3]"),
    target_case("2 targets for 1 image", [_target(), _target()], "1 images but 2 targets"),
    target_case("second image's box", [_target(), _target([[1.0, 1.0, float("nan"), 2.0]])], "image 1"),
    target_case("1-channel image", [_target()], "3-channel images", "[1, 32, 32]", image=torch.rand(1, 32, 32)),
    target_case("uint8 image", [_target()], "floats in [0, 1]", "torch.uint8",
                image=torch.zeros(3, 32, 32, dtype=torch.uint8)),
    target_case("2-D image", [_target()], "Tensor[C, H, W]", image=torch.rand(32, 32)),
]


@pytest.mark.parametrize(("targets", "image", "expected"), TARGET_CASES)
def test_detector_refuses_bad_targets_and_images(detector, targets, image, expected):
    images = [torch.rand(3, 32, 32) if image is None else image for _ in range(1 if len(targets) != 2 else 2)]
    if expected[0].startswith("1 images"):
        images = images[:1]
    with pytest.raises(ValueError) as error:
        detector(images, targets)
    for words in expected:
        assert words in str(error.value), str(error.value)


def test_detector_in_eval_mode_refuses_a_1_channel_image(detector):
    detector.eval()
    try:
        with pytest.raises(ValueError, match="3-channel images"):
            detector([torch.rand(1, 32, 32)])
    finally:
        detector.train()


BOXES = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]])
SCORES = torch.tensor([0.9, 0.8])
NAN = float("nan")


@pytest.mark.parametrize(("function", "args", "expected"), [
    pytest.param("nms", (BOXES, torch.tensor([0.9, NAN]), 0.5), ("scores", "NaN"), id="nms NaN score"),
    pytest.param("nms", (torch.tensor([[0.0, 0.0, NAN, 10.0], [1, 1, 11, 11]]), SCORES, 0.5),
                 ("boxes must be finite",), id="nms NaN box"),
    pytest.param("nms", (torch.tensor([[0.0, 0.0, math.inf, 10.0], [1, 1, 11, 11]]), SCORES, 0.5),
                 ("boxes must be finite",), id="nms inf box"),
    pytest.param("nms", (BOXES[:, :3], SCORES, 0.5), ("boxes", "Tensor[N, 4]"), id="nms boxes [N, 3]"),
    pytest.param("nms", (BOXES.long(), SCORES, 0.5), ("boxes", "float"), id="nms int boxes"),
    pytest.param("nms", (BOXES, SCORES[:1], 0.5), ("scores", "N = 2"), id="nms 1 score for 2 boxes"),
    pytest.param("nms", (BOXES, SCORES, NAN), ("iou_threshold",), id="nms NaN threshold"),
    pytest.param("nms", (BOXES, SCORES, 2.0), ("iou_threshold", "[0, 1]"), id="nms threshold 2"),
    pytest.param("batched_nms", (BOXES, torch.tensor([NAN, 0.5]), torch.tensor([0, 1]), 0.5), ("scores", "NaN"),
                 id="batched_nms NaN score"),
    pytest.param("batched_nms", (BOXES, SCORES, torch.tensor([0]), 0.5), ("idxs", "N = 2"),
                 id="batched_nms 1 idx for 2 boxes"),
])
def test_nms_refuses_bad_inputs_naming_the_argument(function, args, expected):
    from convzoo.detection import ops

    with pytest.raises(ValueError) as error:
        getattr(ops, function)(*args)
    assert str(error.value).startswith(f"{function}: ")
    for words in expected:
        assert words in str(error.value), str(error.value)
