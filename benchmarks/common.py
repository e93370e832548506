"""What a benchmark workload is: one step of rosenblatt and the same step of PyTorch.

Each module in ``benchmarks/workloads/`` defines ``WORKLOADS``, a list of :class:`Workload`.
``setup()`` builds both sides (same shapes, same weights where it matters) and returns two
zero-argument callables that each run one step. The runner (``benchmarks/run.py``) times them in
interleaved rounds with 2 threads each and reports the ratio torch_time / rosenblatt_time
(above 1.0: rosenblatt is faster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Workload:
    name: str                      # e.g. "MLP 784-512-256-10 train step, batch 128"
    group: str                     # e.g. "core", "nn", "optim", "cnn", "rnn"
    setup: Callable[[], tuple[Callable[[], object], Callable[[], object]]]
    target: float | None = None    # the ratio this workload must reach (None: report only)
    memory: bool = False           # also report peak memory of both sides
    notes: str = ""
    extra: dict = field(default_factory=dict)
