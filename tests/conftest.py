"""Shared fixtures. Real data comes from ``$CONVZOO_DATA`` (default ``../shared/data`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real data sets; tests that need it are skipped on a fresh clone without it."""
    path = Path(os.environ.get("CONVZOO_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (set CONVZOO_DATA to run these tests)")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One intra-op thread for tests of many small operations: on a shared, oversubscribed CPU, 2 spinning OpenMP
    threads made them ~7x slower (an MNIST-1D epoch: 5.6 s with 1 thread, 37 s with 2, under load 11 on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
