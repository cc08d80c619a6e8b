"""Every failure a user can cause ends as one line ``convzoo CMD: error: ...`` and exit code 2, never a traceback."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from convzoo.cli import build_parser, main

DETECTOR = ["--model", "faster_rcnn_r50_fpn", "--backbone", "resnet18", "--small", "--data", "shapes",
            "--image-size", "64", "--min-size", "64", "--max-size", "64", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained detector run (one step), a truncated JPEG, a text file posing as weights."""
    root = tmp_path_factory.mktemp("errors")
    args = build_parser().parse_args(["train", *DETECTOR, "--train-size", "2", "--val-size", "1", "--epochs", "1",
                                      "--batch-size", "2", "--out", str(root / "run")])
    args.func(args)
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(buffer, "JPEG")
    (root / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (root / "weights.pth").write_text("not a checkpoint")
    return root


CASES = [  # (argv with {root}, the command, what the line must say)
    (["train", "--model", "no_such_model"], "train", "no_such_model"),
    (["train", *DETECTOR, "--train-size", "2", "--batch-size", "4", "--out", "{root}/small"], "train",
     "--batch-size 4 exceeds the 2 training samples"),
    (["train", "--model", "resnet18", "--small"], "train", "--small: detection option"),
    (["train", "--epochs", "0"], "train", "--epochs must be positive"),
    (["train", "--lr", "-1"], "train", "--lr must be a finite number >= 0"),
    (["train", "--resume", "{root}/absent"], "train", "is not a convzoo run folder"),
    (["train", "--resume", "{root}/run", "--lr", "0.5"], "train", "--lr cannot change when resuming"),
    (["train", "--data", "coco:{root}/absent.json:{root}"], "train", "absent.json"),
    (["train", "--data", "mnist:{root}/absent"], "train", "absent"),
    (["train", "--model", "resnet18", "--pretrained", "{root}/weights.pth"], "train", "weights.pth"),
    (["train", *DETECTOR, "--hflip", "2"], "train", "--hflip must be a probability"),
    (["detect", "predict", "{root}/run", "{root}/cut.jpg"], "detect", "cannot decode image"),
    (["predict", "{root}/run", "{root}/absent.png"], "predict", "no such input file"),
    (["predict", "{root}/run", "{root}/cut.jpg", "--top", "0"], "predict", "--top must be at least 1"),
    (["evaluate", "{root}/absent"], "evaluate", "is not a convzoo run folder"),
    (["evaluate", "{root}/run", "--checkpoint", "best", "--data", "voc:{root}/absent"], "evaluate", "absent"),
]


@pytest.mark.parametrize(("argv", "command", "expected"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_user_error_is_one_line_with_exit_code_2(files, capsys, argv, command, expected):
    code = main([word.format(root=files) for word in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith(f"convzoo {command}: error: ") and expected in err[-1], err[-1]
    assert not any("Traceback" in line for line in err)
