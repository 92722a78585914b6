"""Interpolation of gridded tensors between a coarse grid and its refinement.

A coarse cell covers exactly ``scale`` x ``scale`` fine cells (see
:meth:`dl4ds.data.grid.Grid.refine`), which is the geometry of
``torch.nn.functional.interpolate`` with ``align_corners=False``.
"""

from typing import Literal

import torch
import torch.nn.functional as F

InterpolationMode = Literal["nearest", "bilinear", "bicubic"]


def upsample(x: torch.Tensor, scale: int, mode: InterpolationMode = "bicubic") -> torch.Tensor:
    """Interpolate (B, C, h, w) fields to (B, C, h * scale, w * scale).

    Bicubic uses the Keys kernel (a = -0.75, as in PyTorch) with replicated
    edges; it preserves constants, so it commutes with per-channel
    normalisation. Works in any units.
    """
    if mode == "nearest":
        return F.interpolate(x, scale_factor=scale, mode="nearest")
    return F.interpolate(x, scale_factor=scale, mode=mode, align_corners=False)
