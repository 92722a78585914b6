"""Running a trained network over the tiles of an in-memory block of coarse fields.

A network that predicts in one pass runs once per tile, and the tiles'
predictions are blended. An iterative (diffusion) network is sampled on the
whole block: at every step of its sampler the denoiser runs on every tile of
the current state and the tiles' estimates are blended with the same weights
(multi-diffusion, Bar-Tal et al. 2023), so the sample has no seams; with the
default overlap each blended estimate equals the untiled one to rounding.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from dl4ds.data.grid import Grid
from dl4ds.inference.tiling import TileLayout
from dl4ds.model import DownscalingModel
from dl4ds.networks.diffusion import ResidualDiffusion, edm_sample, noise_levels
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
        steps, churn: the sampler's steps and S_churn for an iterative (diffusion) network.
    """

    def __init__(
        self,
        model: DownscalingModel,
        grid: Grid,
        layout: TileLayout,
        padded_shape: tuple[int, int],
        batch_size: int,
        device: torch.device,
        *,
        steps: int = 1,
        churn: float = 0.0,
    ) -> None:
        meta = model.metadata
        self.model = model.to(device).eval()
        self.meta = meta
        self.grid = grid
        self.layout = layout
        self.padded_shape = padded_shape
        self.batch_size = batch_size
        self.device = device
        self.steps, self.churn = steps, churn
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
        _, steps, _, height, width = values.shape
        inputs = torch.from_numpy(meta.normalizer.normalize_inputs(values.astype(np.float32)))
        inputs = _pad(inputs, *self.padded_shape)
        n_targets = len(meta.target_variables)
        if self.model.capabilities.iterative:
            total = self._sample(inputs[:, 0], keys)[:, None]
        else:
            total = self._blend(inputs, keys, first_step)
        if self.window > 1:
            total /= _windows_per_step(steps, self.window)[None, :, None, None, None]
        output = self.model.to_physical(total[..., : height * scale, : width * scale].numpy(), axis=-3)
        missing = np.isnan(values[:, :, :n_targets]).repeat(scale, axis=-2).repeat(scale, axis=-1)
        output[missing] = np.nan
        if self.no_truth is not None:
            output[..., self.no_truth] = np.nan
        return output

    def _blend(self, inputs: torch.Tensor, keys: torch.Tensor | None, first_step: int) -> torch.Tensor:
        """The tiles' predictions for (N, S, C, hp, wp) padded normalised inputs, blended: (N, S, V, Hp, Wp)."""
        sequences, steps = inputs.shape[:2]
        scale, n_targets = self.meta.scale, len(self.meta.target_variables)
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
        return total

    def _sample(self, inputs: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        """One sample of an iterative network for (N, C, hp, wp) padded normalised inputs: (N, V, Hp, Wp) on the CPU.

        The stage-1 mean and the conditions are computed once per tile; the
        sampler's state covers the whole padded block, its noise drawn from
        random fields over the block (so tiles, batches and chunks do not
        change it), and every denoiser call is blended over the tiles.
        """
        network = self.model.network
        assert isinstance(network, ResidualDiffusion), "iterative networks are residual diffusion models"
        scale, rows, cols = self.meta.scale, *self.layout.shape
        sequences = inputs.shape[0]
        origins = torch.tensor(self.layout.origins)
        weights = self.weights.to(self.device)[:, None]  # (tiles, 1, th * s, tw * s)
        shape = (sequences, len(self.meta.target_variables), self.padded_shape[0] * scale, self.padded_shape[1] * scale)
        units = [(sequence, tile) for sequence in range(sequences) for tile in range(self.layout.count)]
        batches = []  # (sequences, tiles, fine windows, conditions) of each batch of units
        mean = torch.zeros(shape, device=self.device)
        for first in range(0, len(units), self.batch_size):
            index = torch.tensor(units[first : first + self.batch_size])
            tile_origins = origins[index[:, 1]]
            x = torch.stack(
                [
                    inputs[sequence, :, row : row + rows, col : col + cols]
                    for sequence, (row, col) in zip(index[:, 0].tolist(), tile_origins.tolist())
                ]
            ).to(self.device)
            tile_mean, condition = network.condition(x, self._static(tile_origins), self._offset(tile_origins))
            windows = [
                (slice(row * scale, (row + rows) * scale), slice(col * scale, (col + cols) * scale))
                for row, col in tile_origins.tolist()
            ]
            batches.append((index[:, 0].tolist(), index[:, 1], windows, condition))
            for sequence, window, blended in zip(index[:, 0].tolist(), windows, tile_mean * weights[index[:, 1]]):
                mean[sequence, :, window[0], window[1]] += blended

        def denoise(state: torch.Tensor, sigma: float) -> torch.Tensor:
            estimate = torch.zeros_like(state)
            for sequence_list, tiles, windows, condition in batches:
                crops = torch.stack([state[s, :, w[0], w[1]] for s, w in zip(sequence_list, windows)])
                denoised = network.denoise(crops, sigma, condition) * weights[tiles]
                for sequence, window, tile in zip(sequence_list, windows, denoised):
                    estimate[sequence, :, window[0], window[1]] += tile
            return estimate

        sigmas = noise_levels(self.steps, network.sigma_min, network.sigma_max, network.rho)
        assert keys is not None, "the downscaler keys every input of a stochastic network"
        fields = RandomFields(keys, torch.zeros(sequences, 2, dtype=torch.int64), self.padded_shape)
        with self._lock, fields.applied(network):
            residual = edm_sample(
                denoise, lambda draw: network.noise.draw(torch.Size(shape), self.device, draw), sigmas, self.churn
            )
        return network.compose(mean, residual).cpu()

    def _static(self, tile_origins: torch.Tensor) -> torch.Tensor | None:
        """The static fields (b, S, th * s, tw * s) of tiles at ``tile_origins``, or None without static fields."""
        if self.static is None:
            return None
        scale, (rows, cols) = self.meta.scale, self.layout.shape
        return torch.stack(
            [
                self.static[:, row * scale : (row + rows) * scale, col * scale : (col + cols) * scale]
                for row, col in tile_origins.tolist()
            ]
        )

    def _offset(self, tile_origins: torch.Tensor) -> torch.Tensor:
        """(b, 2) first fine cell of each tile in the training grid."""
        return (self.fine_offset + tile_origins * self.meta.scale).to(self.device)

    def _forward(self, x: torch.Tensor, tile_origins: torch.Tensor, keys: torch.Tensor | None) -> torch.Tensor:
        """The network on (b, window, C, th, tw) tiles -> (b, window, V, th * s, tw * s)."""
        rows, cols = self.layout.shape
        batch = x.shape[0]
        x = x.to(self.device) if self.model.capabilities.temporal else x[:, 0].to(self.device)
        static = self._static(tile_origins)
        offset = self._offset(tile_origins)
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
