"""Data-parallel training across processes, started by PyTorch's ``torchrun``:

    torchrun --nproc_per_node 4 -m disgen train dcgan64 --dataset faces/          # one machine
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 -m disgen train ...                             # on each node

This is the only module that reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Every process
holds the whole dataset and the same weights; each global batch (``--batch-size``) is split across
the processes, and after each backward the gradients of that optimizer's parameters are averaged,
weighted by each process's share of the batch, so N processes take the same steps as one process
with the same global batch. Gradients are averaged per optimizer rather than by wrapping the
networks in ``DistributedDataParallel``: the GAN and AAE steps run several forward/backward phases
per batch with parts of the graph frozen, which DDP's one-forward-one-backward contract does not
allow (StyleGAN2-ADA averages its gradients the same way). On CUDA batch norm is synchronised
across processes (``SyncBatchNorm``); gloo on the CPU has no SyncBatchNorm, so there each process
normalises with its own part of the batch. Only the main process (rank 0) evaluates and writes the
run directory.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from disgen.errors import DisgenError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0


def world() -> World:
    """This process's place among the torchrun processes (rank 0 of 1 outside torchrun)."""
    try:
        return World(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )
    except ValueError:
        raise DisgenError(
            "RANK, WORLD_SIZE and LOCAL_RANK must be integers: start disgen with torchrun, which sets them"
        ) from None


def enabled() -> bool:
    return world().size > 1


def is_main() -> bool:
    """Whether this process writes files and logs: rank 0, or the only process."""
    return world().rank == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on the CPU) and return this process's device:
    ``cuda:LOCAL_RANK`` when training on CUDA."""
    if not enabled():
        return device
    w = world()
    if device.type == "cuda":
        if w.local_rank >= torch.cuda.device_count():
            raise DisgenError(
                f"LOCAL_RANK {w.local_rank}: this node has only {torch.cuda.device_count()} "
                "GPU(s); start at most that many processes per node (--nproc_per_node)"
            )
        device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown(clean: bool = False) -> None:
    """Leave the process group. After a run that ended well (``clean``) every process first waits
    for the others: a gloo process that tears down while its peer is still closing connections
    can abort ("terminate called without an active exception"). On gloo the wait is bounded (60 s)
    and a peer that never arrives is reported, not waited for: the run's files are written by
    then. After an error there is no wait, which could last forever for a process that failed."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            try:
                if dist.get_backend() == "gloo":
                    dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
                else:
                    dist.barrier()
            except RuntimeError as e:
                print(f"disgen: process {world().rank} left without its peers: {e}", file=sys.stderr)
        dist.destroy_process_group()


def shard(batch: tuple[torch.Tensor, ...]) -> tuple[tuple[torch.Tensor, ...], float]:
    """This process's part of a global batch, and its share of the batch (for gradient weights)."""
    w = world()
    if w.size == 1:
        return batch, 1.0
    parts = tuple(torch.tensor_split(t, w.size)[w.rank] for t in batch)
    return parts, len(parts[0]) / len(batch[0])


def average_gradients(opt: torch.optim.Optimizer, share: float) -> None:
    """Sum ``share`` x gradient over the processes, in place: the gradient of the mean loss over
    the global batch. One all-reduce of all the optimizer's gradients, flattened."""
    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]).mul_(share)
    dist.all_reduce(flat)
    for g, reduced in zip(grads, torch.split(flat, [g.numel() for g in grads])):
        g.copy_(reduced.view_as(g))


def replicate(nets: dict[str, nn.Module], device: torch.device) -> dict[str, nn.Module]:
    """The same weights in every process (rank 0's), with batch norm synchronised on CUDA."""
    if not enabled():
        return nets
    if device.type == "cuda":
        nets = {k: nn.SyncBatchNorm.convert_sync_batchnorm(m) for k, m in nets.items()}
    for m in nets.values():
        for t in list(m.parameters()) + list(m.buffers()):
            dist.broadcast(t.data, src=0)
    return nets


def check_in_step(nets: dict[str, nn.Module]) -> None:
    """Raise if the processes' weights differ (they must stay identical: a bug otherwise)."""
    if not enabled():
        return
    total = torch.stack([p.detach().double().sum() for m in nets.values() for p in m.parameters()]).sum()
    low, high = total.clone(), total.clone()
    dist.all_reduce(low, dist.ReduceOp.MIN)
    dist.all_reduce(high, dist.ReduceOp.MAX)
    if not torch.equal(low, high):
        raise DisgenError(
            f"the {world().size} processes' weights differ after training "
            f"(sums {low.item()!r} vs {high.item()!r}); please report this"
        )


def gather(obj) -> list:
    """``obj`` from every process, in rank order (``[obj]`` in a single process)."""
    if not enabled():
        return [obj]
    out = [None] * world().size
    dist.all_gather_object(out, obj)
    return out


def mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the processes (``t`` itself in a single process)."""
    if not enabled():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / world().size


def barrier() -> None:
    if enabled():
        dist.barrier()


def process_seed(seed: int) -> int:
    """The seed of this process's random draws after the weights (GAN noise, dropout): different
    per process so they do not draw the same noise; ``seed`` itself in a single process."""
    w = world()
    return seed if w.size == 1 else (seed * 1_000_003 + w.rank) % 2**63
