"""Per-channel standardisation, fitted on the training period only.

Inputs that are coarse versions of a target share that target's statistics,
so that a coarse field and its high-resolution counterpart live in the same
normalised space (the global skip connection of the networks relies on it).
NaNs in inputs and static fields are filled with 0 after normalisation, i.e.
with the training mean of that channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from dl4ds.data.pairing import PairedData

_MIN_STD = 1e-6


@dataclass(frozen=True)
class ChannelStats:
    """Mean and standard deviation of each named channel, in physical units."""

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, field: xr.DataArray, dim: str) -> ChannelStats:
        """Statistics over every dimension except ``dim``, ignoring NaNs.

        A constant channel gets std 1, so it normalises to zeros rather than NaNs.
        """
        other = [d for d in field.dims if d != dim]
        values = field.transpose(dim, *other).values.reshape(field.sizes[dim], -1).astype(np.float64)
        mean = np.nanmean(values, axis=1)
        std = np.nanstd(values, axis=1)
        std = np.where(std < _MIN_STD, 1.0, std)
        return cls(tuple(str(n) for n in field[dim].values), mean, std)

    def normalize(self, values: np.ndarray, axis: int) -> np.ndarray:
        """(x - mean) / std along ``axis`` (the channel axis), as float32."""
        mean, std = self._broadcast(values.ndim, axis)
        return ((values - mean) / std).astype(np.float32)

    def denormalize(self, values: np.ndarray, axis: int) -> np.ndarray:
        """x * std + mean along ``axis`` (the channel axis), as float32."""
        mean, std = self._broadcast(values.ndim, axis)
        return (values * std + mean).astype(np.float32)

    def _broadcast(self, ndim: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        shape = [1] * ndim
        shape[axis] = len(self.names)
        return self.mean.reshape(shape), self.std.reshape(shape)

    def to_dict(self) -> dict[str, list]:
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> ChannelStats:
        return cls(
            tuple(data["names"]), np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        )


@dataclass(frozen=True)
class Normalizer:
    """Statistics for the targets, the input channels and the static fields.

    ``inputs`` uses the target's statistics for the first ``len(target.names)``
    channels (the coarse targets) and the predictors' own for the rest.
    """

    target: ChannelStats
    inputs: ChannelStats
    static: ChannelStats | None

    @classmethod
    def fit(cls, data: PairedData) -> Normalizer:
        """Fit on ``data``, which should be the training period only."""
        target = ChannelStats.fit(data.target, "variable")
        n_targets = len(target.names)
        mean, std = target.mean, target.std
        if data.inputs.sizes["channel"] > n_targets:
            predictors = ChannelStats.fit(data.inputs.isel(channel=slice(n_targets, None)), "channel")
            mean = np.concatenate([mean, predictors.mean])
            std = np.concatenate([std, predictors.std])
        inputs = ChannelStats(tuple(str(c) for c in data.inputs["channel"].values), mean, std)
        static = None if data.static is None else ChannelStats.fit(data.static, "channel")
        return cls(target=target, inputs=inputs, static=static)

    def normalize_inputs(self, values: np.ndarray, axis: int = -3) -> np.ndarray:
        """Normalise (..., channel, lat, lon) inputs and fill NaNs with 0."""
        return np.nan_to_num(self.inputs.normalize(values, axis % values.ndim), nan=0.0)

    def normalize_static(self, values: np.ndarray) -> np.ndarray:
        """Normalise (channel, lat, lon) static fields and fill NaNs with 0."""
        assert self.static is not None
        return np.nan_to_num(self.static.normalize(values, 0), nan=0.0)

    def to_dict(self) -> dict:
        return {
            "target": self.target.to_dict(),
            "inputs": self.inputs.to_dict(),
            "static": None if self.static is None else self.static.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Normalizer:
        return cls(
            target=ChannelStats.from_dict(data["target"]),
            inputs=ChannelStats.from_dict(data["inputs"]),
            static=None if data["static"] is None else ChannelStats.from_dict(data["static"]),
        )
