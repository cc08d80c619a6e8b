"""The errors a user can cause, and their one-line message: what ``convzoo CMD`` prints instead of a traceback.

A user error is a bad option value, model name, file or file content, not a bug in convzoo:

- ``ValueError`` (``json.JSONDecodeError``, convzoo's ``SpecError``, ``WeightsMismatchError``, ...): a bad value;
- ``KeyError``: an unknown name (its message is printed without the quotes ``repr`` adds);
- ``OSError``: a file that is missing, unreadable, a folder, or a disk that is full (the path is in the message);
  ``gzip.BadGzipFile`` and PIL's ``UnidentifiedImageError`` (a file that is not what its name says) are OSErrors;
- ``EOFError``, ``zlib.error``, ``pickle.UnpicklingError``: a truncated or corrupt file;
- safetensors' ``SafetensorError``: a corrupt or foreign ``.safetensors`` file;
- ``argparse.ArgumentTypeError``: a bad option value found after parsing.

Anything else (``RuntimeError``, ``TypeError``, ...) is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import zlib

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, OSError, EOFError, zlib.error, pickle.UnpicklingError, argparse.ArgumentTypeError,
)


def user_error_types() -> tuple[type[BaseException], ...]:
    """``USER_ERRORS`` plus the error types of libraries already imported (importing one only to catch its
    errors would slow every command down; an error of a library that is not imported cannot occur)."""
    extra = []
    safetensors = sys.modules.get("safetensors")
    if safetensors is not None and hasattr(safetensors, "SafetensorError"):
        extra.append(safetensors.SafetensorError)
    return USER_ERRORS + tuple(extra)


def is_user_error(error: BaseException) -> bool:
    return isinstance(error, user_error_types())


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line (the first; ``--debug`` shows the rest).

    An OSError with a path reads ``PATH: reason``, a KeyError loses its quotes; the errors of corrupt files,
    whose messages rarely say what failed (``Error -3 while decompressing data``), start with their type.
    """
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        paths = str(error.filename) + ("" if error.filename2 is None else f" -> {error.filename2}")
        text = f"{paths}: {error.strerror}"
    elif isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])
    else:
        text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    plain = (ValueError, KeyError, argparse.ArgumentTypeError, FileNotFoundError, IsADirectoryError,
             NotADirectoryError, PermissionError)  # messages that say what failed without their type's name
    if not isinstance(error, plain) and not (isinstance(error, OSError) and error.filename is not None):
        lines[:1] = [f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__]
    if not lines:
        return type(error).__name__
    return lines[0] + (" (more with --debug)" if len(lines) > 1 else "")
