"""Data-parallel training over MPI (``mpi4py``; the ``mpi`` extra).

Launch N processes with ``mpiexec -n N python train.py`` (or ``mpiexec -n N rosenblatt train``);
in each::

    import rosenblatt.distributed as dist
    dist.init()
    dist.broadcast_parameters(model)                 # same start everywhere
    sampler = dist.DistributedSampler(len(dataset))  # this process's shard
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in batches_of(sampler.indices()):
            loss = ...; optimizer.zero_grad(); loss.backward()
            dist.allreduce_gradients(model)          # mean gradient of the global batch
            optimizer.step()
        logs = dist.allreduce_metrics({"loss": epoch_loss}, weight=len(sampler))
        dist.print_rank0(logs)

Without ``mpi4py`` or without ``mpiexec`` the world has one process and all of this is a no-op.
``rb.train.Trainer(..., distributed="auto")`` does these steps itself.
"""

from rosenblatt.distributed.comm import (
    allreduce_array,
    barrier,
    broadcast_array,
    communicator,
    init,
    is_distributed,
    is_initialized,
    is_main_process,
    launched_with_mpi,
    print_rank0,
    rank,
    rank_zero_only,
    save_on_main,
    world_size,
)
from rosenblatt.distributed.data_parallel import (
    allreduce_gradients,
    allreduce_metrics,
    broadcast_parameters,
    parameters_equal_across_ranks,
)
from rosenblatt.distributed.sampler import DistributedSampler

__all__ = [
    "DistributedSampler", "allreduce_array", "allreduce_gradients", "allreduce_metrics", "barrier",
    "broadcast_array", "broadcast_parameters", "communicator", "init", "is_distributed", "is_initialized",
    "is_main_process", "launched_with_mpi", "parameters_equal_across_ranks", "print_rank0", "rank",
    "rank_zero_only", "save_on_main", "world_size",
]
