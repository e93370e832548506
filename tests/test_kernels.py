"""The kernel floor's selection and the thread policy: kernel sets, the fallback, thread counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import kernels
from rosenblatt.kernels import threads
from rosenblatt.kernels.onednn import library


@pytest.fixture
def fresh_selection(monkeypatch):
    """Undo any kernel-set choice a test makes (the selection is process-wide)."""
    monkeypatch.setattr(kernels, "_requested", kernels._requested)
    monkeypatch.setattr(kernels, "_active", None)
    monkeypatch.setattr(kernels, "_reason", "")
    yield
    kernels._active = None


@pytest.fixture
def library_absent(monkeypatch, fresh_selection):
    """The oneDNN library cannot be loaded (no distribution, or no libgomp)."""
    monkeypatch.setattr(library, "load", lambda: (False, "libgomp.so.1: cannot open shared object file"))


def test_backend_names_the_kernel_set_and_why(fresh_selection):
    name = rb.backend.kernels()
    assert name.split()[0] in ("onednn", "numpy")
    assert "(" in name  # the reason
    assert kernels.active() in ("onednn", "numpy")


def test_numpy_kernels_on_request(fresh_selection):
    assert rb.backend.set_kernels("numpy") == "numpy"
    assert rb.backend.kernels() == "numpy (requested)"
    assert not kernels.use_onednn(np.zeros(3, np.float32))


def test_auto_falls_back_to_numpy_when_the_library_is_absent(library_absent):
    assert rb.backend.set_kernels("auto") == "numpy"
    assert "libgomp" in rb.backend.kernels()
    # and the framework computes: a conv layer's forward and backward on the NumPy kernels
    conv = rb.nn.Conv2d(1, 2, 3)
    x = rb.randn(2, 1, 6, 6, requires_grad=True)
    conv(x).sum().backward()
    assert x.grad.shape == x.shape
    # the fused paths (layer chains, residual stages, folded inference) stay out of the way
    for model, shape in ((rb.models.LeNet5(), (2, 1, 28, 28)), (rb.models.resnet20(), (2, 3, 16, 16)),
                         (rb.models.VGG([8, "M", 8], batch_norm=True, num_classes=3, small_input=True,
                                        hidden_features=8), (2, 3, 16, 16))):
        x = rb.randn(*shape)
        model(x).sum().backward()
        model.eval()
        with rb.no_grad():
            y = model(x)
        assert y.grad_fn is None and np.isfinite(y.numpy()).all()


def test_onednn_without_the_library_is_a_clear_error(library_absent):
    with pytest.raises(RuntimeError, match="'onednn' requested but unavailable: libgomp"):
        rb.backend.set_kernels("onednn")


def test_unknown_kernel_set_is_a_value_error(fresh_selection):
    with pytest.raises(ValueError, match="set_kernels: expected one of auto, onednn, numpy, got 'mkl'"):
        rb.backend.set_kernels("mkl")


def test_environment_variable_chooses_the_set():
    code = "import rosenblatt as rb; print(rb.backend.kernels())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**_environment(), "ROSENBLATT_KERNELS": "numpy"})
    assert out.stdout.strip() == "numpy (requested)"
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**_environment(), "ROSENBLATT_KERNELS": "fast"})
    assert bad.returncode != 0 and "ROSENBLATT_KERNELS: expected one of" in bad.stderr


def _environment() -> dict[str, str]:
    return dict(os.environ)


# -- threads ------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.setattr(threads, "_requested", threads._requested)
    yield
    threads._apply(threads.configured_threads())


def test_set_num_threads_sets_every_pool(restore_threads):
    rb.set_num_threads(1)
    assert rb.get_num_threads() == 1
    assert threads.effective_threads() == 1
    if threads.blas_threads() is not None:
        assert threads.blas_threads() == 1
    from rosenblatt.kernels import optim

    assert optim.update_threads() == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_set_num_threads_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="set_num_threads: expected a positive integer"):
        rb.set_num_threads(bad)


def _load_window(monkeypatch, load: float) -> None:
    """Open a load window, then close it with ``load`` cores used by other processes."""
    monkeypatch.setattr(threads, "_last_check", 0.0)
    monkeypatch.setattr(threads, "_window", None)
    threads.tick()
    assert threads._window is not None
    start = threads._window
    monkeypatch.setattr(threads, "_window", (start[0] - threads.LOAD_WINDOW * 1.5,) + start[1:])
    monkeypatch.setattr(threads, "_window_load", lambda s: load)
    threads.tick()
    assert threads._window is None


def test_busy_machine_lowers_the_thread_count_and_a_quiet_one_restores_it(restore_threads, monkeypatch):
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    threads._apply(2)
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_adaptive", True)
    _load_window(monkeypatch, 2.0)  # two other processes keep both cores busy
    assert threads.effective_threads() == 1
    assert rb.get_num_threads() == 2  # the configured count is unchanged
    _load_window(monkeypatch, 0.1)
    assert threads.effective_threads() == 2


def test_a_count_set_by_the_user_stays_fixed_on_a_busy_machine(restore_threads, monkeypatch):
    rb.set_num_threads(2)
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_adaptive", True)
    monkeypatch.setattr(threads, "_last_check", 0.0)
    monkeypatch.setattr(threads, "_window", None)
    threads.tick()
    assert threads._window is None and threads.effective_threads() == 2


def _open_window(monkeypatch) -> tuple:
    """Two cores, two threads, the adaptive policy on, and a load window just opened: its start."""
    monkeypatch.setattr(threads, "_requested", None)
    threads._apply(2)
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    monkeypatch.setattr(threads, "_adaptive", True)
    monkeypatch.setattr(threads, "_last_check", 0.0)
    monkeypatch.setattr(threads, "_window", None)
    threads.tick()
    return threads._window


def test_a_load_window_stretched_by_an_idle_pause_is_dropped(restore_threads, monkeypatch):
    start = _open_window(monkeypatch)
    monkeypatch.setattr(threads, "_window", (start[0] - threads.LOAD_WINDOW * 10,) + start[1:])
    monkeypatch.setattr(threads, "_window_load", lambda s: 2.0)
    threads.tick()
    assert threads._window is None and threads.effective_threads() == 2


def test_a_load_window_with_a_pause_inside_is_dropped(restore_threads, monkeypatch):
    """Two bursts of work with a pause between them (another process ran then): not this process's load."""
    start = _open_window(monkeypatch)
    monkeypatch.setattr(threads, "_window", (start[0] - threads.LOAD_WINDOW * 1.5,) + start[1:])
    monkeypatch.setattr(threads, "_last_tick", threads._last_tick - threads.MAX_TICK_GAP * 2)  # the pause
    monkeypatch.setattr(threads, "_window_load", lambda s: 2.0)
    threads.tick()
    assert threads._window is None and threads.effective_threads() == 2


def test_window_load_reads_proc_stat():
    threads.tick()
    busy = threads._machine_busy_seconds()
    t = os.times()
    value = threads._window_load((time.monotonic() - 0.05, busy, t.user + t.system))
    assert value is None or value >= 0.0


def test_other_load_reads_proc_stat():
    threads.other_load()
    value = threads.other_load()
    assert value is None or value >= 0.0


def test_openblas_idle_threads_spin_briefly():
    threads.ensure_applied()
    info = threads.policy_info()
    if threads.blas_threads() is None:
        pytest.skip(info["blas"])
    assert info["blas_spin_shortened"]
    a = np.ones((300, 300))
    np.testing.assert_allclose(a @ a, 300.0)  # products still run after the server restart


def test_set_num_threads_first_also_shortens_openblas_spinning():
    # set_num_threads before any computation is how PyTorch users start; it once skipped the spin setting
    code = ("import rosenblatt as rb; from rosenblatt.kernels import threads; rb.set_num_threads(1); "
            "info = threads.policy_info(); print(info['blas_threads'] is None or info['blas_spin_shortened'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "True"


def test_info_reports_kernels_and_threads():
    out = subprocess.run([sys.executable, "-m", "rosenblatt", "info"], capture_output=True, text=True, check=True,
                         env=_environment())
    assert "kernels: " in out.stdout and "threads: " in out.stdout
