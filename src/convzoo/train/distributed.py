"""Data-parallel training under ``torchrun``: process group from the environment, DDP, sharded sampling, reductions.

    torchrun --nproc-per-node 2 -m convzoo train ...          # one machine
    torchrun --nnodes 2 --node-rank R --rdzv-endpoint HOST:PORT --nproc-per-node 8 -m convzoo train ...

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init_distributed` reads them
(gloo on CPU, NCCL on CUDA). Without them everything here is a no-op for one process, so the same code path runs
everywhere. Task-agnostic: every task trains through the same helpers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0


def init_distributed(device: str | None = None) -> tuple[DistributedContext, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment; return the context and the device.

    ``device``: "cpu", "cuda" (this process gets ``cuda:LOCAL_RANK``) or None (cuda if available).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    context = DistributedContext(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {kind} asked for, but this machine has no CUDA device")
        index = context.local_rank if context.enabled or kind == "cuda" else torch.device(kind).index
        target = torch.device("cuda", index)
        torch.cuda.set_device(target)
    else:
        target = torch.device(kind)
    if context.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return context, target


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, context: DistributedContext, device: torch.device, sync_bn: bool = False,
               find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` when there are several processes (optionally with SyncBatchNorm).

    SyncBatchNorm computes the batch statistics over all processes' samples; PyTorch implements it for CUDA only.
    """
    if sync_bn:
        if device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA: PyTorch's SyncBatchNorm has no CPU implementation "
                             "(on CPU each process normalizes with the statistics of its own batch)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if not context.enabled:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                               find_unused_parameters=find_unused_parameters)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shard ``rank`` of ``num_replicas``; the permutation depends only on ``seed`` and the
    epoch) that can start an epoch after its first ``skip`` indices, to resume in the middle of an epoch."""

    def __init__(self, dataset: Dataset, context: DistributedContext, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def reduce_sums(values: dict[str, float], context: DistributedContext, device: torch.device) -> dict[str, float]:
    """Sum each value over all processes (every rank gets the totals); identity for one process."""
    if not context.enabled:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return dict(zip(keys, tensor.tolist()))


def broadcast_object(value, context: DistributedContext):
    """Rank 0's ``value`` on every rank (e.g. the run folder name)."""
    if not context.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reducer_of(context: DistributedContext):
    """The :class:`convzoo.tasks.Reducer` of this process: shards by rank, sums with all_reduce, gathers lists
    with all_gather_object (identity for one process)."""
    from convzoo.tasks.base import ONE_PROCESS, Reducer

    if not context.enabled:
        return ONE_PROCESS

    def total(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather(items: list) -> list:
        parts: list = [None] * context.world_size
        dist.all_gather_object(parts, items)
        return [item for part in parts for item in part]

    return Reducer(context.rank, context.world_size, total, gather)


def agree_on_max(value: float, context: DistributedContext, device: torch.device) -> float:
    """The largest ``value`` of all processes (so that every rank takes the same decision, e.g. out of time)."""
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.item()
