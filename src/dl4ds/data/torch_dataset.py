"""PyTorch datasets of normalised training samples."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from dl4ds.data.normalization import Normalizer
from dl4ds.data.pairing import PairedData
from dl4ds.errors import ConfigError

Sample = dict[str, torch.Tensor]


class DownscalingDataset(Dataset[Sample]):
    """Normalised (input, target) samples, one per time step or window of steps, held in memory.

    Each sample is a dict of tensors:

    - ``x``: (channels, h, w) coarse inputs, or (T, channels, h, w) for a
      window of T consecutive time steps;
    - ``static``: (static channels, h * scale, w * scale), zero channels if none;
    - ``y``: (variables, h * scale, w * scale) targets, NaN filled with 0, or
      (T, variables, h * scale, w * scale) for a window;
    - ``weight``: same shape as ``y``, the loss weight of each cell: 0 where
      the target is missing (NaN) or outside the region, else ``cell_weights``
      (1 by default);
    - ``offset``: (2,) row and column of the sample's first fine cell in the
      full fine grid (for layers tied to absolute grid position).

    Args:
        data: paired data, e.g. the training period.
        normalizer: statistics fitted on the training period.
        patch_size: (height, width) in fine cells of random patches, aligned
            with the coarse grid (both multiples of the scale); None gives the
            whole domain. A sample's patch position depends only on ``seed``,
            the epoch (see :meth:`set_epoch`) and the sample's index, so the
            same samples come out in any process, worker or order.
        time_window: T, the number of consecutive time steps per sample (for
            spatio-temporal networks); None gives single time steps. Every
            window of T steps is a sample (they overlap).
        cell_weights: (H, W) loss weights on the fine grid (see :func:`cell_weights`).
        seed: seeds the patch positions.
    """

    def __init__(
        self,
        data: PairedData,
        normalizer: Normalizer,
        patch_size: tuple[int, int] | None = None,
        time_window: int | None = None,
        cell_weights: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        self.scale = data.scale
        self.seed = seed
        self.epoch = 0
        steps = data.target.sizes["time"]
        if time_window is not None and not 1 <= time_window <= steps:
            raise ConfigError(
                f"time_window={time_window} does not fit the {steps} time steps of these data; "
                f"use a window between 1 and {steps}, or a longer period"
            )
        self.time_window = time_window
        fine_shape = data.fine_grid.shape
        if patch_size is not None:
            height, width = patch_size
            if height < self.scale or width < self.scale or height % self.scale or width % self.scale:
                raise ConfigError(
                    f"patch size {height} x {width} must be a positive multiple of the scale {self.scale} on both "
                    f"axes (fine cells, e.g. {16 * self.scale} x {16 * self.scale}); or none for whole-domain samples"
                )
            if height > fine_shape[0] or width > fine_shape[1]:
                raise ConfigError(
                    f"patch size {height} x {width} is larger than the domain {fine_shape[0]} x {fine_shape[1]}; "
                    "use a smaller patch_size, or none for whole-domain samples"
                )
        self.patch_size = patch_size
        self.x = torch.from_numpy(normalizer.normalize_inputs(data.inputs.values))
        target = data.target.values
        weight = (~np.isnan(target)).astype(np.float32)
        if cell_weights is not None:
            if cell_weights.shape != fine_shape or not np.all(cell_weights >= 0):
                raise ConfigError(
                    f"cell_weights must be non-negative numbers on the fine grid, shape {fine_shape}; "
                    f"got shape {cell_weights.shape}"
                )
            weight *= cell_weights.astype(np.float32)
        self.weight = torch.from_numpy(weight)
        self.y = torch.from_numpy(np.nan_to_num(normalizer.target.normalize(target, 1), nan=0.0))
        if data.static is None:
            self.static = torch.zeros((0, *fine_shape))
        else:
            self.static = torch.from_numpy(normalizer.normalize_static(data.static.values))

    def __len__(self) -> int:
        return self.x.shape[0] - (self.time_window or 1) + 1

    def set_epoch(self, epoch: int) -> None:
        """Draw the patches of epoch ``epoch`` (the trainer calls this before each epoch)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> Sample:
        if self.patch_size is None:
            row = col = 0
            height, width = self.y.shape[-2:]
        else:
            height, width = self.patch_size
            coarse_rows = (self.y.shape[-2] - height) // self.scale + 1
            coarse_cols = (self.y.shape[-1] - width) // self.scale + 1
            position = np.random.default_rng([self.seed, self.epoch, index])
            row = int(position.integers(coarse_rows)) * self.scale
            col = int(position.integers(coarse_cols)) * self.scale
        fine = (slice(row, row + height), slice(col, col + width))
        coarse = (
            slice(row // self.scale, (row + height) // self.scale),
            slice(col // self.scale, (col + width) // self.scale),
        )
        steps = index if self.time_window is None else slice(index, index + self.time_window)
        return {
            "x": self.x[steps][..., coarse[0], coarse[1]],
            "static": self.static[:, fine[0], fine[1]],
            "y": self.y[steps][..., fine[0], fine[1]],
            "weight": self.weight[steps][..., fine[0], fine[1]],
            "offset": torch.tensor([row, col]),
        }


def cell_weights(
    data: PairedData,
    *,
    region: str | None = None,
    region_min: float | None = None,
    region_max: float | None = None,
    area_weighted: bool = False,
) -> np.ndarray | None:
    """(H, W) loss weights on the fine grid of ``data``: a region of a static field and/or cos(latitude).

    Args:
        data: paired data with the static fields.
        region: name of a static field (e.g. ``"land_fraction"``) that
            selects the cells the loss sees: those with ``region_min <= value
            <= region_max`` (physical units; either bound may be None).
        area_weighted: weight cells by cos(latitude), normalised to mean 1 over
            the grid, so every square kilometre counts the same.

    Returns:
        float32 weights, or None when neither option is used.
    """
    if region is None and not area_weighted:
        return None
    weights = np.ones(data.fine_grid.shape, dtype=np.float32)
    if region is not None:
        if region not in data.static_variables:
            raise ConfigError(
                f"loss region {region!r} is not among the static fields {list(data.static_variables)}; "
                "name one of them, or add the field to data.static"
            )
        if region_min is None and region_max is None:
            raise ConfigError(f"loss region {region!r} needs region_min and/or region_max, e.g. region_min: 0.5")
        assert data.static is not None, "static_variables is empty without static fields"
        values = data.static.sel(channel=region).values
        inside = np.ones(values.shape, dtype=bool)
        if region_min is not None:
            inside &= values >= region_min
        if region_max is not None:
            inside &= values <= region_max
        if not inside.any():
            raise ConfigError(f"no cell has {region_min} <= {region} <= {region_max}; widen the loss region's bounds")
        weights *= inside
    if area_weighted:
        cos_lat = np.cos(np.deg2rad(data.target["lat"].values)).clip(min=0.0)
        weights *= (cos_lat / cos_lat.mean()).astype(np.float32)[:, None]
    return weights
