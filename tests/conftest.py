"""Shared test configuration: the ``--backend`` option and the PyTorch oracle fixture."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption("--backend", action="store", default="cpu", choices=("cpu", "cuda"),
                     help="array backend to run the op and layer tests on (cuda needs CuPy and a GPU)")


def pytest_configure(config):
    import tests.parity as parity

    parity.DEVICE = config.getoption("--backend")
    if parity.DEVICE == "cuda":
        import rosenblatt as rb

        if not rb.cuda.is_available():
            raise pytest.UsageError("--backend cuda: CuPy with a usable GPU is not available")


@pytest.fixture(autouse=True)
def _seed():
    import rosenblatt as rb

    rb.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def device():
    import tests.parity as parity

    return parity.DEVICE
