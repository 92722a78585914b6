"""Array kernels shared by the baselines: interpolation that keeps NaN blocks, block means, NaN-skipping means."""

from __future__ import annotations

from typing import get_args

import numpy as np
import torch

from dl4ds.data.pairing import PairedData
from dl4ds.errors import ConfigError
from dl4ds.utils.interpolation import InterpolationMode, upsample

_STENCIL_REACH = 2  # coarse cells beyond its own that bicubic interpolation reads for a fine cell


def interpolate(values: np.ndarray, scale: int, mode: InterpolationMode) -> np.ndarray:
    """Interpolate (..., h, w) values to float32 (..., h * scale, w * scale) with :func:`upsample`."""
    *leading, height, width = values.shape
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(-1, 1, height, width))
    return upsample(tensor, scale, mode).numpy().reshape(*leading, height * scale, width * scale)


def repeat_blocks(values: np.ndarray, scale: int) -> np.ndarray:
    """Each cell of (..., h, w) values repeated over a ``scale`` x ``scale`` block."""
    return values.repeat(scale, axis=-2).repeat(scale, axis=-1)


def nanmean(values: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN, accumulated in float64; NaN where no value is valid (no warning)."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0).sum(axis=axis, dtype=np.float64)
    count = valid.sum(axis=axis)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def block_mean(values: np.ndarray, scale: int) -> np.ndarray:
    """NaN-skipping float64 mean of the ``scale`` x ``scale`` blocks of (..., H, W) values.

    The coarsening of :class:`~dl4ds.data.pairing.PerfectProg`
    (:func:`dl4ds.data.fields.block_average`) on arrays; all-NaN blocks give NaN.
    """
    *leading, height, width = values.shape
    return nanmean(values.reshape(*leading, height // scale, scale, width // scale, scale), axis=(-3, -1))


def neighbour_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the 3 x 3 neighbourhood of each cell of (..., h, w) values (zero outside the grid)."""
    padded = np.pad(values, [(0, 0)] * (values.ndim - 2) + [(1, 1), (1, 1)])
    height, width = values.shape[-2:]
    windows = (padded[..., i : i + height, j : j + width] for i in range(3) for j in range(3))
    return sum(windows, start=np.zeros(values.shape, dtype=values.dtype))


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """A float32 copy of (..., h, w) values with NaN cells filled for interpolation.

    A NaN cell takes the mean of its valid 3 x 3 neighbours, repeated so that
    every cell an interpolation stencil can read from a valid block is filled.
    Cells further from valid data are set to 0: they only reach the blocks of
    NaN cells, which are masked afterwards.
    """
    filled = values.astype(np.float32)
    for _ in range(_STENCIL_REACH):
        missing = np.isnan(filled)
        count = neighbour_sum((~missing).astype(np.float32))
        total = neighbour_sum(np.where(missing, 0, filled))
        filled = np.where(missing & (count > 0), total / np.maximum(count, 1), filled)
    return np.nan_to_num(filled, nan=0.0)


def interpolate_valid(values: np.ndarray, scale: int, mode: InterpolationMode) -> np.ndarray:
    """Interpolate (..., h, w) values to float32 (..., H, W), NaN exactly over the blocks of NaN cells."""
    missing = np.isnan(values)
    if not missing.any():
        return interpolate(values, scale, mode)
    fine = interpolate(fill_gaps(values), scale, mode)
    fine[repeat_blocks(missing, scale)] = np.nan
    return fine


def coarse_targets(data: PairedData) -> np.ndarray:
    """(time, variable, lat, lon) coarse input channels of the target variables, physical units."""
    return data.inputs.values[:, : len(data.target_variables)]


def check_mode(mode: str, option: str) -> None:
    """Raise ConfigError unless ``mode`` is an interpolation mode; ``option`` names the setting in the message."""
    modes = get_args(InterpolationMode)
    if mode not in modes:
        raise ConfigError(f"{option} must be one of {', '.join(modes)}, got {mode!r}")
