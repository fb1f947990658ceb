"""Data parallelism through torch.distributed: one process per rank, DistributedDataParallel, gloo on CPUs and
NCCL on GPUs. A rank learns its place from the standard environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT) that torchrun, our own launcher (launch.py) or SLURM's srun sets.

`data.batchSize` is the global micro-batch: every rank takes a disjoint, contiguous slice of each batch of the
one seeded permutation, so the batch sequence, the data position in checkpoints and the learning rate
(base lr x global batch / 256) do not depend on the world size. ConvNeXt has no BatchNorm (LayerNorm and GRN
are per sample), so a rank's slice needs no statistics from the others: no SyncBatchNorm.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from typing import Any, ContextManager, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Sampler

from .events import EventWriter

Tensor = torch.Tensor

# Seconds a collective (or the rendezvous) may wait for the other ranks before it fails with a named error.
DEFAULT_TIMEOUT_S = 600


def timeout_seconds() -> int:
    raw = os.environ.get("CNX_DIST_TIMEOUT", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_TIMEOUT_S


class RendezvousError(RuntimeError):
    """The ranks could not meet: the message names the address, the backend and the timeout."""


class Ranks:
    """This process's place in the run; world 1 (no process group) behaves as a plain single process."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.backend = ""
        self.timeout_s = timeout_seconds()

    @staticmethod
    def from_env() -> "Ranks":
        env = os.environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return Ranks()
        return Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        """Joins the process group (env rendezvous); the timeout applies to every collective after it."""
        if not self.enabled:
            return
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        # Without async error handling a stuck NCCL collective never reaches its timeout.
        os.environ.setdefault("NCCL_ASYNC_ERROR_HANDLING", "1")
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        try:
            dist.init_process_group(self.backend, init_method="env://", rank=self.rank, world_size=self.world,
                                    timeout=datetime.timedelta(seconds=self.timeout_s))
        except RuntimeError as err:
            raise RendezvousError(f"{self.backend} rendezvous at {where} failed for rank {self.rank} of {self.world} "
                               f"(timeout {self.timeout_s} s, CNX_DIST_TIMEOUT): {err}") from None

    def timeout_message(self, err: BaseException) -> Optional[str]:
        """A user-facing message when `err` is a collective that timed out, naming the backend and limit."""
        if isinstance(err, RendezvousError):
            return str(err)
        text = str(err).lower()
        if not self.enabled or not ("timed out" in text or "timeout" in text):
            return None
        return (f"a {self.backend} collective timed out after {self.timeout_s} s on rank {self.rank} of "
                f"{self.world}: another rank stopped answering (raise CNX_DIST_TIMEOUT for slow steps)")

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    # ---- collectives (identity on one process) --------------------------------------------------------
    def mean_and_any(self, value: float, flag: bool) -> Tuple[float, bool]:
        """The mean of `value` over ranks and whether any rank raised `flag` (e.g. a stop request)."""
        if not self.enabled:
            return value, flag
        t = torch.tensor([value, 1.0 if flag else 0.0], dtype=torch.float64)
        if self.backend == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return float(t[0]) / self.world, bool(t[1] > 0)

    def sum_(self, t: Tensor) -> Tensor:
        if self.enabled:
            dist.all_reduce(t)
        return t

    def gather(self, items: List[Any]) -> List[Any]:
        """Every rank's list, concatenated in rank order."""
        if not self.enabled:
            return items
        out: List[Any] = [None] * self.world
        dist.all_gather_object(out, items)
        return [x for part in out for x in part]

    def shard(self, n: int) -> slice:
        """This rank's contiguous slice of a global batch of n items."""
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    # ---- model ----------------------------------------------------------------------------------------
    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        if not self.enabled:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, output_device=device.index if ids else None)

    def no_sync(self, wrapped: nn.Module, last_micro_batch: bool) -> ContextManager[Any]:
        """Gradient accumulation all-reduces once, on the last micro-batch of a step."""
        if self.enabled and not last_micro_batch and isinstance(wrapped, nn.parallel.DistributedDataParallel):
            return wrapped.no_sync()
        return contextlib.nullcontext()


def pick_cuda_device(ranks: Ranks) -> torch.device:
    """A rank's GPU: the launcher restricts CUDA_VISIBLE_DEVICES to the job's devices, so local rank = index."""
    index = ranks.local_rank if ranks.enabled else 0
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


class ShardedBatchSampler(Sampler):
    """This rank's slice of each global batch of `inner` (an EpochBatchSampler of the global batch size)."""

    def __init__(self, inner: Sampler, ranks: Ranks, global_batch: int) -> None:
        if global_batch % ranks.world:
            raise ValueError(f"data.batchSize {global_batch} does not split evenly over {ranks.world} processes; "
                             f"use a multiple of {ranks.world}")
        self.inner = inner
        self.part = ranks.shard(global_batch)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for batch in self.inner:
            yield batch[self.part]


class RankEvents(EventWriter):
    """Events of a rank other than 0 go to stderr, where the launcher reads them: errors as JSON lines (its
    outcome), logs as text (the last lines shown when the rank dies); progress is rank 0's to report."""

    def __init__(self, rank: int) -> None:
        super().__init__(sys.stderr)
        self.rank = rank

    def emit(self, type_: str, **fields: Any) -> None:
        if type_ == "error":
            sys.stderr.write(json.dumps({"v": 1, "type": "error", "rank": self.rank, **fields}) + "\n")
            sys.stderr.flush()
        elif type_ == "log" and fields.get("level") != "debug":
            sys.stderr.write(f"{fields.get('level')}: {fields.get('message')}\n")
            sys.stderr.flush()
