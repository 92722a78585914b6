"""Running a trained network over the tiles of an in-memory block of coarse fields."""

from __future__ import annotations

import threading

import numpy as np
import torch

from dl4ds.data.grid import Grid
from dl4ds.inference.tiling import TileLayout
from dl4ds.model import DownscalingModel
from dl4ds.networks.random_fields import RandomFields, combine


class TilePredictor:
    """Downscales blocks of coarse fields on one grid, tile by tile, in batches.

    Built once per grid: it holds the network on its device, the static
    fields of the grid's window (padded like the inputs), the tile layout and
    the blending weights.

    Args:
        model: the trained model.
        grid: the coarse grid the inputs are on (the model's grid or a window
            of it for a domain-bound model; any grid of its spacing otherwise).
        layout: the tiles of the padded grid (see :class:`TileLayout`).
        padded_shape: (rows, cols) of the grid padded to the network's size multiple.
        batch_size: tiles (or windows of tiles) per forward pass.
        device: where the network runs.
    """

    def __init__(
        self,
        model: DownscalingModel,
        grid: Grid,
        layout: TileLayout,
        padded_shape: tuple[int, int],
        batch_size: int,
        device: torch.device,
    ) -> None:
        meta = model.metadata
        self.model = model.to(device).eval()
        self.meta = meta
        self.grid = grid
        self.layout = layout
        self.padded_shape = padded_shape
        self.batch_size = batch_size
        self.device = device
        scale = meta.scale
        self.weights = torch.from_numpy(layout.weights(scale))  # (tiles, th * s, tw * s)
        window = grid.window_in(meta.coarse_grid)
        self.fine_window = None if window is None else tuple(slice(w.start * scale, w.stop * scale) for w in window)
        self.static = None
        if model.capabilities.takes_static and self.fine_window is not None:
            static = model.static[:, self.fine_window[0], self.fine_window[1]]
            self.static = _pad(static, padded_shape[0] * scale, padded_shape[1] * scale).to(device)
        self.no_truth = (
            None
            if self.fine_window is None
            else model.no_truth[:, self.fine_window[0], self.fine_window[1]].cpu().numpy()
        )
        offset = (0, 0) if self.fine_window is None else (self.fine_window[0].start, self.fine_window[1].start)
        self.fine_offset = torch.tensor(offset)
        self.window = (meta.time_window or 1) if model.capabilities.temporal else 1  # steps per forward pass
        self._lock = threading.Lock()

    @torch.no_grad()
    def predict(self, values: np.ndarray, keys: torch.Tensor | None, first_step: int = 0) -> np.ndarray:
        """Downscale a block in physical units.

        Args:
            values: (N, S, C, h, w) coarse inputs: N sequences of S consecutive
                steps (S = 1 for a spatial network), on ``grid``.
            keys: (N,) random-field keys of the sequences (see
                :func:`dl4ds.networks.random_fields.item_keys`), or None for a
                deterministic network.
            first_step: index of the block's first step along time, which
                keys a spatio-temporal network's windows.

        Returns:
            (N, S, V, h * scale, w * scale) float32 fine fields in physical
            units; a spatio-temporal network's steps are the means over the
            windows of ``time_window`` steps that contain them. NaN where the
            input was NaN and where the model had no training truth.
        """
        meta, scale = self.meta, self.meta.scale
        sequences, steps, _, height, width = values.shape
        inputs = torch.from_numpy(meta.normalizer.normalize_inputs(values.astype(np.float32)))
        inputs = _pad(inputs, *self.padded_shape)
        n_targets = len(meta.target_variables)
        rows, cols = self.layout.shape
        total = torch.zeros(sequences, steps, n_targets, self.padded_shape[0] * scale, self.padded_shape[1] * scale)
        units = [
            (sequence, step, tile)
            for sequence in range(sequences)
            for step in range(steps - self.window + 1)
            for tile in range(self.layout.count)
        ]
        origins = torch.tensor(self.layout.origins)
        for first in range(0, len(units), self.batch_size):
            batch = units[first : first + self.batch_size]
            index = torch.tensor(batch)  # (b, 3): sequence, step, tile
            tile_origins = origins[index[:, 2]]
            x = torch.stack(
                [
                    inputs[sequence, step : step + self.window, :, row : row + rows, col : col + cols]
                    for (sequence, step, _), (row, col) in zip(batch, tile_origins.tolist())
                ]
            )
            prediction = self._forward(
                x, tile_origins, None if keys is None else self._unit_keys(keys, index, first_step)
            )
            prediction = prediction.cpu().float() * self.weights[index[:, 2], None, None]
            for (sequence, step, _), (row, col), tile in zip(batch, tile_origins.tolist(), prediction):
                total[
                    sequence,
                    step : step + self.window,
                    :,
                    row * scale : (row + rows) * scale,
                    col * scale : (col + cols) * scale,
                ] += tile
        if self.window > 1:
            total /= _windows_per_step(steps, self.window)[None, :, None, None, None]
        output = self.model.to_physical(total[..., : height * scale, : width * scale].numpy(), axis=-3)
        missing = np.isnan(values[:, :, :n_targets]).repeat(scale, axis=-2).repeat(scale, axis=-1)
        output[missing] = np.nan
        if self.no_truth is not None:
            output[..., self.no_truth] = np.nan
        return output

    def _forward(self, x: torch.Tensor, tile_origins: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        """The network on (b, window, C, th, tw) tiles -> (b, window, V, th * s, tw * s)."""
        scale = self.meta.scale
        rows, cols = self.layout.shape
        batch = x.shape[0]
        x = x.to(self.device) if self.model.capabilities.temporal else x[:, 0].to(self.device)
        static = None
        if self.static is not None:
            static = torch.stack(
                [
                    self.static[:, row * scale : (row + rows) * scale, col * scale : (col + cols) * scale]
                    for row, col in tile_origins.tolist()
                ]
            )
        offset = (self.fine_offset + tile_origins * scale).to(self.device)
        if keys is None:
            prediction = self.model(x, static, offset)
        else:
            # the fields are set on the network's layers: one forward pass at a time when dask runs blocks in threads
            with self._lock, RandomFields(keys, tile_origins, (rows, cols)).applied(self.model.network):
                prediction = self.model(x, static, offset)
        return prediction if self.model.capabilities.temporal else prediction.reshape(batch, 1, *prediction.shape[1:])

    def _unit_keys(self, keys: torch.Tensor, index: torch.Tensor, first_step: int) -> torch.Tensor:
        """Keys of (sequence, step, tile) units: a sequence's key, and for windows also their first step."""
        unit_keys = keys[index[:, 0]]
        if self.model.capabilities.temporal:
            unit_keys = combine(unit_keys, index[:, 1] + first_step)
        return unit_keys


def _pad(values: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Pad the last two dims of ``values`` to (rows, cols) by repeating the last row and column."""
    extra_rows, extra_cols = rows - values.shape[-2], cols - values.shape[-1]
    if not (extra_rows or extra_cols):
        return values
    flat = values.reshape(-1, 1, *values.shape[-2:])
    padded = torch.nn.functional.pad(flat, (0, extra_cols, 0, extra_rows), mode="replicate")
    return padded.reshape(*values.shape[:-2], rows, cols)


def _windows_per_step(steps: int, window: int) -> torch.Tensor:
    """(steps,) how many windows of ``window`` consecutive steps contain each step."""
    return torch.from_numpy(np.convolve(np.ones(steps - window + 1), np.ones(window)).astype(np.float32))
