"""Pixel losses that ignore cells without truth (NaN in the target)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from dl4ds.errors import ConfigError

MaskedLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def masked_mae(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the cells where ``mask`` is True; all tensors (B, V, H, W)."""
    weight = mask.to(prediction.dtype)
    return ((prediction - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the cells where ``mask`` is True; all tensors (B, V, H, W)."""
    weight = mask.to(prediction.dtype)
    return ((prediction - target).square() * weight).sum() / weight.sum().clamp_min(1.0)


LOSSES: dict[str, MaskedLoss] = {"mae": masked_mae, "mse": masked_mse}


def get_loss(name: str) -> MaskedLoss:
    """The masked loss called ``name``."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
