"""One run folder, one owner: a lock file names the process that writes a run folder; a second writer is refused.

    with claim_run_folder(run_dir, resume=False):      # refuses a folder that holds a run, or one in use
        ...                                            # write config.json, checkpoints, metrics

The lock ``RUN/.lock`` is created with ``O_EXCL`` (atomic on local file systems) and holds the owner's pid, host
and start time. A lock whose process is gone (same host, no such pid) is stale: it is reported and taken over. A
lock from another host cannot be checked and is refused with the way out (delete the file).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"


class RunFolderError(ValueError):
    """The run folder is taken: it holds another run, or a live process writes it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def check_new_run(run_dir: Path, resume: bool) -> None:
    """A new run needs a folder without a run in it; ``--resume`` needs one with a run."""
    if resume:
        return
    if (run_dir / "config.json").exists():
        raise RunFolderError(f"--out {run_dir} already holds a run (config.json); continue it with --resume {run_dir} "
                             "or choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir} is a file, not a folder")


def _take_lock(path: Path) -> None:
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            pid, host = owner.get("pid"), owner.get("host")
            since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("started", 0)))
            if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
                print(f"convzoo train: {path.parent}: removed the stale lock of pid {pid} (no such process)",
                      file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            raise RunFolderError(f"run folder {path.parent} is in use by pid {pid} on {host} since {since}; if that "
                                 f"process is gone, delete {path}") from None
        with os.fdopen(descriptor, "w") as f:
            f.write(record)
        return
    raise RunFolderError(f"run folder {path.parent}: cannot take the lock {path}")


@contextmanager
def claim_run_folder(run_dir: str | Path, resume: bool, enabled: bool = True):
    """Own ``run_dir`` for the duration (creating it); ``enabled=False`` (ranks other than 0) does nothing."""
    run_dir = Path(run_dir)
    if not enabled:
        yield run_dir
        return
    check_new_run(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK
    _take_lock(lock)
    try:
        check_new_run(run_dir, resume)  # a run that finished while we waited for nothing: still refused
        yield run_dir
    finally:
        lock.unlink(missing_ok=True)
