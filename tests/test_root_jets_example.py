"""The ROOT jets example writes its ntuple with uproot, reads it with ROOTDataset and learns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_root_jets_example_runs_quick(tmp_path):
    pytest.importorskip("uproot")
    pytest.importorskip("awkward")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "src"))
    result = subprocess.run([sys.executable, str(root / "examples" / "root_jets.py"), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "jets.root").exists()
    accuracy = float(result.stdout.split("test accuracy")[1].split()[0])
    assert accuracy > 0.75, result.stdout  # chance is 0.5; the constituent-count cut alone gets ~0.8
