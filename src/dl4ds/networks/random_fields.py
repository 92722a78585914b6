"""Random fields tied to place and sample, so that tiles and batches draw the same noise.

During training, noise injection and dropout draw from torch's global
generator, a fresh sample at every call. At inference a stochastic network is
applied to tiles, batches and chunks whose layout should not change the
result: an ensemble member must be the same whether the domain was cut into
tiles or not, and whatever the batch size. :class:`RandomFields` gives every
stochastic layer numbers that depend only on

- the *key* of the input it belongs to (from the seed, the sample number and
  the input's index among the time steps and members), and
- the absolute grid position of each cell, at the layer's resolution,

through a counter-based hash, so that two overlapping tiles see identical
noise where they overlap and the blended output has no seam.

Positions are found from the tile's origin and size in coarse cells: a layer
whose feature maps have ``h`` rows in a tile of ``tile_rows`` coarse rows works
at ``h / tile_rows`` cells per coarse cell (``scale`` on the fine grid, 1 on the
coarse grid, 1/2 after a U-Net pooling). Tile origins must be multiples of the
inverse of the coarsest such resolution, which the tiling guarantees.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import nn

_MASK32 = 0xFFFFFFFF


def hash32(values: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash ("lowbias32", C. Wellons) of int64 values in [0, 2**32), elementwise.

    The multiplications are split into 16-bit halves so that no int64
    product overflows; the result is in [0, 2**32).
    """
    x = values & _MASK32
    x = x ^ (x >> 16)
    x = _multiply32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _multiply32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _multiply32(x: torch.Tensor, constant: int) -> torch.Tensor:
    low = (x & 0xFFFF) * constant
    high = ((x >> 16) * constant) & 0xFFFF
    return (low + (high << 16)) & _MASK32


def combine(key: torch.Tensor, value: torch.Tensor | int) -> torch.Tensor:
    """Mix ``value`` into ``key`` (both broadcastable int64): a new 32-bit key."""
    return hash32(key ^ hash32(torch.as_tensor(value, dtype=torch.int64, device=key.device) + 0x9E3779B9))


def item_keys(seed: int, sample: int, items: torch.Tensor) -> torch.Tensor:
    """Keys (int64, in [0, 2**32)) of the inputs ``items`` (int64 indices) in draw ``sample`` of run ``seed``."""
    key = torch.tensor(seed & _MASK32, dtype=torch.int64)
    key = combine(combine(combine(key, seed >> 32), sample), 0)
    return combine(key.to(items.device), items)


@runtime_checkable
class StochasticLayer(Protocol):
    """A layer that draws from :class:`RandomFields` when its ``random_fields`` is set, else from torch's generator."""

    random_fields: RandomFields | None


class RandomFields:
    """Noise for one forward pass of tiles: uniform or normal values keyed by input, layer, channel and position.

    Args:
        keys: (B,) int64 key of each tile's input (see :func:`item_keys`);
            tiles of the same input share it.
        origins: (B, 2) int64 row and column of each tile's first coarse cell
            in the (padded) domain.
        tile_shape: (rows, columns) of the tiles, in coarse cells.
    """

    def __init__(self, keys: torch.Tensor, origins: torch.Tensor, tile_shape: tuple[int, int]) -> None:
        self.keys = keys.to(torch.int64)
        self.origins = origins.to(torch.int64)
        self.tile_shape = tile_shape
        self._layers: dict[int, int] = {}

    @contextlib.contextmanager
    def applied(self, network: nn.Module) -> Iterator[None]:
        """Make every stochastic layer of ``network`` draw from these fields inside the block.

        Stochastic layers are those with a ``random_fields`` attribute
        (:class:`~dl4ds.networks.blocks.NoiseInjection`,
        :class:`~dl4ds.networks.blocks.FieldDropout`); they are numbered in
        module order, which keys their fields.
        """
        layers = [module for module in network.modules() if isinstance(module, StochasticLayer)]
        self._layers = {id(module): index for index, module in enumerate(layers)}
        for module in layers:
            module.random_fields = self
        try:
            yield
        finally:
            for module in layers:
                module.random_fields = None

    def uniform(self, layer: nn.Module, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """Values in (0, 1) of ``shape`` (B', C, h, w) for ``layer``; h = w = 1 gives one value per channel."""
        return _to_unit(self._hashes(layer, shape, device, stream=0))

    def normal(self, layer: nn.Module, shape: torch.Size, device: torch.device, draw: int = 0) -> torch.Tensor:
        """Standard normal values of ``shape`` (B', C, h, w) for ``layer`` (Box-Muller on two uniform streams).

        ``draw`` numbers independent fields of one layer (e.g. a sampler's steps).
        """
        radius = torch.sqrt(-2.0 * torch.log(_to_unit(self._hashes(layer, shape, device, stream=2 * draw))))
        angle = (2.0 * math.pi) * _to_unit(self._hashes(layer, shape, device, stream=2 * draw + 1))
        return radius * torch.cos(angle)

    def _hashes(self, layer: nn.Module, shape: torch.Size, device: torch.device, stream: int) -> torch.Tensor:
        batch, channels, height, width = shape
        keys, origins = self.keys.to(device), self.origins.to(device)
        if batch != len(keys):
            if batch % len(keys):
                raise ValueError(f"random fields for {len(keys)} tiles cannot fill a batch of {batch}")
            frames = batch // len(keys)  # spatio-temporal networks flatten (B, T) to B * T frames
            keys = combine(keys.repeat_interleave(frames), torch.arange(frames, device=device).repeat(len(self.keys)))
            origins = origins.repeat_interleave(frames, dim=0)
        key = combine(combine(keys, self._layers[id(layer)]), stream)[:, None]  # (B', 1)
        key = combine(key, torch.arange(channels, device=device)[None, :])  # (B', C)
        if height == 1 and width == 1:
            return key[:, :, None, None]
        rows = origins[:, 0, None] * height // self.tile_shape[0] + torch.arange(height, device=device)  # (B', h)
        cols = origins[:, 1, None] * width // self.tile_shape[1] + torch.arange(width, device=device)  # (B', w)
        key = combine(key[:, :, None], rows[:, None, :])  # (B', C, h)
        return combine(key[:, :, :, None], cols[:, None, None, :])  # (B', C, h, w)


def _to_unit(hashes: torch.Tensor) -> torch.Tensor:
    """32-bit hashes to float32 in the open interval (0, 1), from their top 24 bits."""
    return ((hashes >> 8).to(torch.float32) + 0.5) / float(1 << 24)
