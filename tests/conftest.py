"""Shared test configuration: the ``--backend`` option, the PyTorch oracle fixture and the kernel sets."""

from __future__ import annotations

import os

# One BLAS thread for the tests: the shapes are small, and on a busy 2-core machine a second
# thread per process makes small matrix products many times slower. Set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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


@pytest.fixture(params=["numpy", "onednn"])
def kernel_set(request):
    """Runs the test under each kernel set (oneDNN skipped where it does not load), with an empty
    primitive cache, and restores the set that was active."""
    import rosenblatt as rb
    from rosenblatt.kernels.onednn import library

    ok, why = library.load()
    if request.param == "onednn" and not ok:
        pytest.skip(f"oneDNN unavailable: {why}")
    before = rb.kernels.active()
    rb.kernels.set_kernels(request.param)
    if ok:
        library.clear_cache()
    yield request.param
    rb.kernels.set_kernels(before)


@pytest.fixture
def onednn():
    """Runs the test with the oneDNN kernels (skipped where they do not load), then restores the set
    that was active."""
    import rosenblatt as rb
    from rosenblatt.kernels.onednn import library

    ok, why = library.load()
    if not ok:
        pytest.skip(f"oneDNN unavailable: {why}")
    before = rb.kernels.active()
    rb.kernels.set_kernels("onednn")
    yield
    rb.kernels.set_kernels(before)
