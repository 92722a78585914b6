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
    - ``mask``: same shape as ``y``, True where the target is valid;
    - ``offset``: (2,) row and column of the sample's first fine cell in the
      full fine grid (for layers tied to absolute grid position).

    Args:
        data: paired data, e.g. the training period.
        normalizer: statistics fitted on the training period.
        patch_size: (height, width) in fine cells of random patches, aligned
            with the coarse grid (both multiples of the scale); None gives the
            whole domain. Patches are drawn anew at every access, from torch's
            global random generator.
        time_window: T, the number of consecutive time steps per sample (for
            spatio-temporal networks); None gives single time steps. Every
            window of T steps is a sample (they overlap).
    """

    def __init__(
        self, data: PairedData, normalizer: Normalizer, patch_size: tuple[int, int] | None = None, time_window: int | None = None
    ) -> None:
        self.scale = data.scale
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
            if height % self.scale or width % self.scale:
                raise ConfigError(f"patch size {height} x {width} must be a multiple of the scale {self.scale} on both axes")
            if height > fine_shape[0] or width > fine_shape[1]:
                raise ConfigError(
                    f"patch size {height} x {width} is larger than the domain {fine_shape[0]} x {fine_shape[1]}; "
                    "use a smaller patch_size, or none for whole-domain samples"
                )
        self.patch_size = patch_size
        self.x = torch.from_numpy(normalizer.normalize_inputs(data.inputs.values))
        target = data.target.values
        self.mask = torch.from_numpy(~np.isnan(target))
        self.y = torch.from_numpy(np.nan_to_num(normalizer.target.normalize(target, 1), nan=0.0))
        if data.static is None:
            self.static = torch.zeros((0, *fine_shape))
        else:
            self.static = torch.from_numpy(normalizer.normalize_static(data.static.values))

    def __len__(self) -> int:
        return self.x.shape[0] - (self.time_window or 1) + 1

    def __getitem__(self, index: int) -> Sample:
        if self.patch_size is None:
            row = col = 0
            height, width = self.y.shape[-2:]
        else:
            height, width = self.patch_size
            coarse_rows = (self.y.shape[-2] - height) // self.scale + 1
            coarse_cols = (self.y.shape[-1] - width) // self.scale + 1
            row = int(torch.randint(coarse_rows, ()).item()) * self.scale
            col = int(torch.randint(coarse_cols, ()).item()) * self.scale
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
            "mask": self.mask[steps][..., fine[0], fine[1]],
            "offset": torch.tensor([row, col]),
        }
