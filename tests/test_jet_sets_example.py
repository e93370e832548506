"""The jet-sets example: its Transformer is a function of the *set* of particles (shuffling them,
padding included, changes nothing but float rounding), and the example runs in quick mode."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rosenblatt as rb

ROOT = Path(__file__).resolve().parents[1]


def _example():
    spec = importlib.util.spec_from_file_location("jet_sets", ROOT / "examples" / "jet_sets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dtype, bound", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_transformer_output_ignores_particle_order(dtype, bound):
    jets = _example()
    particles, mask, _ = jets.make_jets(16, np.random.default_rng(0))
    assert (~mask).any() and mask.sum(1).min() >= 4  # padded, variable-size sets
    model = jets.JetTransformer().to(dtype)
    difference = jets.permutation_difference(model, particles.astype(dtype), mask)
    assert difference < bound
    # a network that sees the order does change (the shuffle is real)
    flat = jets.sorted_flat(particles, mask)
    assert np.allclose(flat, jets.sorted_flat(*_shuffled(particles, mask)))  # sorting restores the order
    with rb.no_grad():
        unmasked = model.encoder(model.embed(rb.tensor(particles.astype(dtype)))).numpy()
    assert unmasked.shape == (16, jets.MAX_PARTICLES, 32)


def _shuffled(particles, mask):
    order = np.stack([np.random.default_rng(i).permutation(particles.shape[1]) for i in range(len(particles))])
    return np.take_along_axis(particles, order[..., None], axis=1), np.take_along_axis(mask, order, axis=1)


def test_jet_classes_differ_in_substructure():
    jets = _example()
    particles, mask, labels = jets.make_jets(400, np.random.default_rng(3))
    # two-prong jets are wider: the pT-weighted angular spread is larger
    share = np.exp(particles[..., 0] * 2.0 - 4.0) * mask
    spread = (share * np.hypot(particles[..., 1], particles[..., 2])).sum(1) / share.sum(1)
    assert spread[labels == 1].mean() > spread[labels == 0].mean()


@pytest.mark.slow
def test_jet_sets_example_runs_quick():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "jet_sets.py"), "--quick"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "Transformer  test ROC AUC" in result.stdout and "DeepSets" in result.stdout

