"""The oneDNN ctypes bindings: loading, descriptors, primitives, the cache, the fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rosenblatt.kernels.onednn import library as L

ok, why = L.load()
requires_onednn = pytest.mark.skipif(not ok, reason=f"oneDNN unavailable: {why}")
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=environ, timeout=60)


@requires_onednn
def test_version_and_threads():
    assert L.version().startswith("oneDNN 3.") and L.version().endswith("(onednn-cpu-gomp)")
    before = L.get_num_threads()
    L.set_num_threads(1)
    assert L.get_num_threads() == 1
    L.set_num_threads(before)
    with pytest.raises(ValueError, match="set_num_threads"):
        L.set_num_threads(0)


@requires_onednn
def test_memory_desc_queries_and_equality():
    x = np.zeros((2, 3, 4, 5), np.float32)
    md = L.MemoryDesc.of(x)
    assert md.dims == (2, 3, 4, 5) and md.strides == (60, 20, 5, 1) and md.nbytes == x.nbytes
    assert md == L.MemoryDesc.with_tag(x.shape, L.C.nchw)
    assert md != L.MemoryDesc.with_tag(x.shape, L.C.nhwc)
    assert md.matches(x) and not md.matches(np.zeros((2, 3, 5, 4), np.float32))


@requires_onednn
def test_reorder_and_error_names_the_op():
    x = np.random.rand(2, 3, 4, 5).astype(np.float32)
    out = np.empty_like(x)
    L.to_layout(x, L.MemoryDesc.of(x), L.MemoryDesc.with_tag(x.shape, L.C.nhwc), out, key="t")
    np.testing.assert_array_equal(out.reshape(2, 4, 5, 3), x.transpose(0, 2, 3, 1))
    bad = L.MemoryDesc.with_tag((2, 3), L.C.nc)
    d = L.dims([1, 1])
    with pytest.raises(L.DnnlError, match="myconv: oneDNN dnnl_convolution_forward"):
        L.create_pd("convolution_forward", L.C.forward_training, L.C.convolution_direct,
                    L.MemoryDesc.of(x), bad, None, bad, d, d, d, d, None, op="myconv")


@requires_onednn
def test_primitive_cache_builds_once():
    built = []
    key = ("test-cache", 1)
    first = L.cached(key, lambda: built.append(1) or object())
    assert L.cached(key, lambda: built.append(1) or object()) is first and built == [1]


@requires_onednn
def test_primitives_are_kept_per_thread_count():
    """oneDNN fixes a primitive's thread count at creation: another count gets its own entry, and
    the first comes back with its count (no rebuild when the thread policy switches back)."""
    before = L.get_num_threads()
    key = ("test-cache-threads", 1)
    try:
        L.set_num_threads(2)
        two = L.cached(key, object)
        L.set_num_threads(1)
        one = L.cached(key, object)
        assert one is not two and L.cached(key, object) is one
        L.set_num_threads(2)
        assert L.cached(key, object) is two
        assert {id(v) for k, v in L.cache_items() if k == key} == {id(two), id(one)}
    finally:
        L.set_num_threads(before)


@requires_onednn
def test_import_does_not_load_the_library():
    r = _run("""
        import sys, rosenblatt, rosenblatt.kernels.onednn.library as L
        assert not L.loaded() and 'libdnnl' not in open('/proc/self/maps').read()
        print('ok')
    """)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_missing_libgomp_warns_once_and_falls_back():
    r = _run("""
        import warnings
        import rosenblatt as rb
        from rosenblatt.kernels.onednn import library as L
        L.GOMP_NAME = "libgomp-that-does-not-exist.so.1"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(rb.kernels.active())
            print(rb.kernels.set_kernels("auto"))
        print(len(caught), caught[0].message if caught else "")
        x = rb.randn(1, 1, 5, 5)
        print(rb.nn.functional.conv2d(x, rb.randn(2, 1, 3, 3)).shape)
    """, ROSENBLATT_KERNELS="auto")
    lines = r.stdout.splitlines()
    assert r.returncode == 0, r.stderr
    if not ok:  # no library at all: nothing to warn about
        assert lines[0] == "numpy"
        return
    assert lines[0] == "numpy" and lines[1] == "numpy"
    assert lines[2].startswith("1 ") and "libgomp" in lines[2] and "NumPy kernels" in lines[2]
    assert "(1, 2, 3, 3)" in lines[3]


def test_openmp_spins_briefly_by_default_but_respects_the_user():
    # what GNU OpenMP sees in the environment at the moment it loads, and what is left afterwards
    code = """
        import ctypes, os
        real = ctypes.CDLL
        def spy(name, *args, **kwargs):
            if 'gomp' in str(name):
                print('at load:', os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))
            return real(name, *args, **kwargs)
        ctypes.CDLL = spy
        from rosenblatt.kernels.onednn import library as L
        L.load()
        print('after:', os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))
    """
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cases = [({}, f"None {L.SPIN_COUNT}", "None None"), ({"OMP_WAIT_POLICY": "active"}, "active None", "active None"),
             ({"GOMP_SPINCOUNT": "7"}, "None 7", "None 7")]
    for extra, at_load, after in cases:
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                           env={**env, "PYTHONPATH": SRC, **extra}, timeout=60)
        lines = r.stdout.splitlines()
        assert lines[-1] == f"after: {after}", (extra, r.stdout, r.stderr)
        if ok:
            assert lines == [f"at load: {at_load}", f"after: {after}"], (extra, r.stdout, r.stderr)


def test_address_is_the_first_element_of_any_array():
    """``library.address`` (the fast route for writable contiguous arrays) agrees with NumPy's own
    ``ctypes.data`` for views with offsets, transposes, reversed, read-only, broadcast and empty arrays."""
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    read_only = a.copy()
    read_only.flags.writeable = False
    for view in (a, a[1:], a[:, 1:], a[1, 2:], a.transpose(2, 0, 1), a[::-1], a[..., ::2], read_only,
                 np.broadcast_to(a[0, 0], (3, 5)), np.empty(0, np.float32), np.empty((0, 3), np.float64)):
        assert L.address(view) == view.ctypes.data
