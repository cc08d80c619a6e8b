"""Argument types shared by the commands (argparse ``type=`` callables; no torch)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``--depth``, ``--seeds``, ``--opset``, ...: an integer >= 1, else argparse's one-line error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
