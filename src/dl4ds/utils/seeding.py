"""Seeded blocks of random draws that leave torch's global random state as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's generator (and ``device``'s, for CUDA) for the block, then restore its state.

    With ``seed=None`` nothing is seeded or restored: the block draws from, and
    advances, the global generator.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
