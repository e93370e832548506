"""Data parallelism: the same model on every process, each on its own shard of every batch.

A training step on N processes is the single-process step on the global batch, provided that
(1) every process starts from the same weights (:func:`broadcast_parameters`), (2) after
``backward()`` every gradient is replaced by its mean over the processes
(:func:`allreduce_gradients`) - the mean of N local mean-losses over equal shards is the mean
loss of the global batch - and (3) every process then applies the same optimizer update.

Gradients are reduced in *buckets*: the gradients of consecutive parameters are flattened into
one contiguous buffer of at most ``bucket_size_mb`` and reduced with a single ``Allreduce``. One
call per bucket rather than per parameter pays MPI's per-message latency a handful of times per
step instead of hundreds of times (a ResNet has over 60 parameter tensors).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module, is_cupy_array
from rosenblatt.core import Tensor, constant, mark_modified, no_grad
from rosenblatt.distributed import comm as _comm


def _tensors(model_or_tensors: Any, what: str) -> list[Tensor]:
    if hasattr(model_or_tensors, "parameters") and callable(model_or_tensors.parameters):
        return list(model_or_tensors.parameters())
    if isinstance(model_or_tensors, Tensor):
        return [model_or_tensors]
    try:
        tensors = list(model_or_tensors)
    except TypeError:
        raise TypeError(f"{what}: expected a Module or an iterable of parameters, "
                        f"got {type(model_or_tensors).__name__}") from None
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: expected parameters (Tensors), got an element of type {type(t).__name__}")
    return tensors


def _buckets(arrays: list[Any], bucket_bytes: int) -> Iterator[list[int]]:
    """Indices of ``arrays`` grouped into runs of one dtype and device, each at most ``bucket_bytes``
    (a single larger array gets a bucket of its own)."""
    current: list[int] = []
    size = 0
    key = None
    for i, a in enumerate(arrays):
        a_key = (a.dtype, is_cupy_array(a))
        if current and (a_key != key or size + a.nbytes > bucket_bytes):
            yield current
            current, size = [], 0
        current.append(i)
        size += a.nbytes
        key = a_key
    if current:
        yield current


def _flatten(arrays: list[Any]) -> np.ndarray:
    """One contiguous host buffer holding the arrays one after another."""
    xp = get_array_module(arrays[0])
    flat = xp.concatenate([a.reshape(-1) for a in arrays]) if len(arrays) > 1 else arrays[0].reshape(-1).copy()
    return flat.get() if is_cupy_array(flat) else flat


def _unflatten(flat: np.ndarray, like: list[Any]) -> list[Any]:
    """Split a flat host buffer back into arrays shaped (and placed) like ``like``."""
    flat = _comm._back_like(flat, like[0])
    out, offset = [], 0
    for a in like:
        out.append(flat[offset:offset + a.size].reshape(a.shape))
        offset += a.size
    return out


def broadcast_parameters(model: Any, root: int = 0, buffers: bool = True) -> None:
    """Copy ``root``'s parameters (and buffers, e.g. batch-norm running statistics) to every process.

    Call it once before training so that every process starts from the same weights whatever its
    random initialisation was. ``model`` is a Module or an iterable of tensors. Values are written
    in place, so optimizers that already hold the parameters keep working.
    """
    if not _comm.is_distributed():
        return
    if hasattr(model, "state_dict") and buffers:
        tensors = list(model.state_dict(keep_vars=True).values())
    else:
        tensors = _tensors(model, "broadcast_parameters")
    arrays = [t.data for t in tensors]
    with no_grad():
        for bucket in _buckets(arrays, 25 * 2**20):
            flat = _flatten([arrays[i] for i in bucket])
            _comm.communicator().Bcast(flat, root=root)
            for i, value in zip(bucket, _unflatten(flat, [arrays[i] for i in bucket])):
                tensors[i].data[...] = value
                mark_modified(tensors[i])


def allreduce_gradients(model_or_params: Any, bucket_size_mb: float = 25) -> int:
    """Replace every parameter's ``.grad`` by its mean over all processes; returns the number of
    bucket reductions made (0 when not distributed).

    Call it after ``loss.backward()`` and before ``optimizer.step()``. Parameters whose gradient is
    ``None`` on every process stay ``None``; one that has a gradient somewhere is treated as zero
    where it has none (a branch not taken on one shard). Finding out which is which costs one tiny
    extra reduction of a flag per parameter.
    """
    if bucket_size_mb <= 0:
        raise ValueError(f"allreduce_gradients: bucket_size_mb must be positive, got {bucket_size_mb}")
    params = [p for p in _tensors(model_or_params, "allreduce_gradients") if p.requires_grad]
    if not _comm.is_distributed() or not params:
        return 0
    from mpi4py import MPI

    communicator = _comm.communicator()
    has_grad = np.array([p.grad is not None for p in params], dtype=np.int32)
    communicator.Allreduce(MPI.IN_PLACE, has_grad, op=MPI.MAX)
    params = [p for p, flag in zip(params, has_grad) if flag]
    grads = []
    for p in params:
        if p.grad is None:
            grads.append(get_array_module(p.data).zeros_like(p.data))
        else:
            grads.append(p.grad.data)
    scale = 1.0 / _comm.world_size()
    count = 0
    for bucket in _buckets(grads, int(bucket_size_mb * 2**20)):
        flat = _flatten([grads[i] for i in bucket])
        communicator.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        flat *= scale
        count += 1
        # Each parameter gets its own slice of the bucket as its gradient: slices never overlap,
        # so in-place updates of one gradient (clipping, optimizers) cannot touch another.
        for i, value in zip(bucket, _unflatten(flat, [grads[i] for i in bucket])):
            params[i].grad = constant(value)
    return count


def allreduce_metrics(metrics: Mapping[str, Any], weight: float = 1.0) -> dict[str, float]:
    """Weighted means of scalar metrics over all processes.

    Each process passes its own values and the weight they carry (usually the number of samples
    they were computed on); every process gets ``sum(w_r * m_r) / sum(w_r)`` for each metric. All
    processes must pass the same keys. Without distribution the values come back as floats.
    """
    keys = sorted(metrics)  # the same order on every process
    values = np.array([float(np.asarray(metrics[k])) for k in keys] + [1.0], dtype=np.float64)
    if not _comm.is_distributed():
        return {k: float(np.asarray(metrics[k])) for k in metrics}
    weight = float(weight)
    if not weight >= 0:
        raise ValueError(f"allreduce_metrics: weight must be non-negative, got {weight}")
    values *= weight
    totals = _comm.allreduce_array(values, op="sum")
    if totals[-1] == 0:
        raise ValueError("allreduce_metrics: the weights sum to zero over all processes")
    reduced = {k: float(v / totals[-1]) for k, v in zip(keys, totals[:-1])}
    return {k: reduced[k] for k in metrics}  # the caller's order (the reduction used sorted keys)


def parameters_equal_across_ranks(model_or_params: Any, atol: float = 0.0) -> bool:
    """True when every process holds the same parameter values (to ``atol``): a cheap sanity check
    that data-parallel training has not drifted. One max- and one min-reduction per parameter."""
    if not _comm.is_distributed():
        return True
    for p in _tensors(model_or_params, "parameters_equal_across_ranks"):
        high = _comm.allreduce_array(p.data, op="max")
        low = _comm.allreduce_array(p.data, op="min")
        if float(get_array_module(high).max(high - low, initial=0.0)) > atol:
            return False
    return True


