"""Torch devices by name, checked to exist on this machine before any work starts."""

from __future__ import annotations

import torch

from dl4ds.errors import ConfigError


def torch_device(name: str, *, cpu: str = "device='cpu'") -> torch.device:
    """The torch device called ``name`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked to exist here.

    Args:
        name: the device's name.
        cpu: how the user asks for the CPU instead, for the messages, e.g.
            ``"training.device: cpu"`` or ``"--device cpu"``.

    Raises:
        ConfigError: not a device name, or a device this machine does not have.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a PyTorch build without CUDA"
        raise ConfigError(
            f"device {name!r} was asked for, but torch finds no CUDA GPU here ({build}); use {cpu}, or run on a "
            "machine with a GPU and a CUDA build of PyTorch"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(
            f"device {name!r} does not exist: torch sees {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
            "choose one of those"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} was asked for, but the Apple MPS backend is not available here; use {cpu}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r}: dl4ds runs on 'cpu', 'cuda' or 'mps' devices; use {cpu}")
    return device
