"""Running a stage under ``accelerate launch --num_processes N``: who writes, and sharded inference.

Training needs nothing here (the Hugging Face Trainer runs DDP itself); outputs are written by
rank 0 only. Inference over a large pool is split across the processes and gathered back in the
input order, so every process holds the same result and rank 0 writes it.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np


def world_size() -> int:
    """Number of processes ``accelerate launch`` (or torchrun) started; 1 when run plainly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the process that writes outputs (rank 0 under ``accelerate launch``)."""
    return int(os.environ.get("RANK", "0")) == 0


def device_name() -> str:
    """This process's device: its own GPU (``LOCAL_RANK``) when there are GPUs, else the CPU."""
    import torch

    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def sharded_apply(function: Callable[[list[str]], list[np.ndarray]], texts: list[str]) -> list[np.ndarray]:
    """``function(texts)`` (a list of ``(n, k_i)`` arrays) with the rows split across the processes.

    Process ``r`` of ``N`` computes rows ``r, r + N, ...``; the pieces are gathered and put back in
    input order, so every process returns what a single process would have computed.
    """
    if world_size() == 1:
        return function(texts)
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():  # the launcher set RANK, WORLD_SIZE, MASTER_ADDR/PORT
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    index = np.arange(len(texts))[dist.get_rank() :: dist.get_world_size()]
    local = function([texts[i] for i in index]) if len(index) else None
    pieces: list = [None] * dist.get_world_size()
    dist.all_gather_object(pieces, (index, local))
    shapes = [p[1] for p in pieces if p[1] is not None][0]
    result = [np.zeros((len(texts), *a.shape[1:]), dtype=a.dtype) for a in shapes]
    for rows, arrays in pieces:
        if arrays is not None:
            for out, array in zip(result, arrays):
                out[rows] = array
    return result
