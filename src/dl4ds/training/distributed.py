"""Data-parallel training with torch.distributed, as launched by ``torchrun``.

``torchrun --nproc_per_node N -m dl4ds.cli train config.yaml`` starts N
processes with the environment variables ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :meth:`Distributed.from_environment` joins them into a process
group (NCCL on GPUs, Gloo on CPUs) and gives each its device. Every process
holds the same model; DDP averages the gradients of their shares of each
global batch, so N processes take the same steps as one process with the
same global batch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dl4ds.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        """The process group of a ``torchrun`` launch (joined on first use), or a single process.

        Raises:
            ConfigError: CUDA training with more processes on a node than GPUs.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1 or not dist.is_available():
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda" and local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"process {rank} has local rank {local_rank}, but this node has {torch.cuda.device_count()} GPU(s); "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        return cls(dist.get_rank(), dist.get_world_size(), local_rank)

    @property
    def is_main(self) -> bool:
        """Whether this process logs, validates and writes checkpoints (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, requested: torch.device) -> torch.device:
        """The device of this process: its own GPU (``cuda:LOCAL_RANK``) for CUDA training, else ``requested``."""
        if self.active and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def local_batch_size(self, batch_size: int) -> int:
        """This process's share of a global batch of ``batch_size`` samples.

        Raises:
            ConfigError: the global batch does not split evenly across the processes.
        """
        if batch_size % self.world_size:
            raise ConfigError(
                f"batch_size={batch_size} (the global batch) does not split evenly across {self.world_size} processes; "
                f"use a multiple of {self.world_size}"
            )
        return batch_size // self.world_size

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` wrapped in DistributedDataParallel, or itself in a single process."""
        if not self.active:
            return module
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``values`` over the processes (``values`` itself in a single process)."""
        if self.active:
            values = values.clone()
            dist.all_reduce(values)
        return values

    def broadcast(self, value: float | None) -> float | None:
        """Rank 0's ``value`` on every process."""
        if not self.active:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.active:
            dist.barrier()


def is_main_process() -> bool:
    """Whether this process is rank 0 of the process group, or there is no group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shutdown() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
