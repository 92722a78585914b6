"""The contract every baseline follows: ``fit(train)`` on training pairs, then ``predict(data)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import xarray as xr

from dl4ds.data.grid import Grid
from dl4ds.data.pairing import PairedData
from dl4ds.errors import ConfigError, DataError


@dataclass(frozen=True, eq=False)
class _Layout:
    """What a baseline was fitted on, to check the data it is applied to."""

    scale: int
    target_variables: tuple[str, ...]
    input_variables: tuple[str, ...]
    static_variables: tuple[str, ...]
    grid: Grid

    @classmethod
    def of(cls, data: PairedData) -> _Layout:
        return cls(data.scale, data.target_variables, data.input_variables, data.static_variables, data.fine_grid)

    def check(self, data: PairedData, baseline: str, *, grid: bool) -> None:
        """Raise :class:`DataError` naming every difference between ``data`` and this layout."""
        other = _Layout.of(data)
        differences = [
            f"{label} {theirs} (fitted with {mine})"
            for label, mine, theirs in (
                ("scale", self.scale, other.scale),
                ("target variables", list(self.target_variables), list(other.target_variables)),
                ("input variables", list(self.input_variables), list(other.input_variables)),
                ("static variables", list(self.static_variables), list(other.static_variables)),
            )
            if mine != theirs
        ]
        if grid and not self.grid.equals(other.grid):
            differences.append(f"fine grid {other.grid.describe()} (fitted on {self.grid.describe()})")
        if differences:
            raise DataError(
                f"the data does not match what the {baseline} baseline was fitted on: {'; '.join(differences)}. "
                "Pair the data like the training data, or fit the baseline on data like this"
            )


class Baseline(ABC):
    """A reference downscaling method: ``fit(train)``, then ``predict(data)``.

    Attributes:
        name: the registry name (see :func:`create_baseline`).
        requires_fit: whether the baseline learns from training data (and so
            refuses to predict before :meth:`fit`).
        per_point: whether it learns values per grid point, so that it only
            applies to data on the grid it was fitted on.
    """

    name: str
    requires_fit: ClassVar[bool] = True
    per_point: ClassVar[bool] = False

    def __init__(self) -> None:
        self._layout: _Layout | None = None

    def fit(self, train: PairedData) -> Self:
        """Learn from the training pairs ``train`` only (interpolation baselines just record its layout)."""
        self._fit(train)
        self._layout = _Layout.of(train)
        return self

    def predict(self, data: PairedData) -> xr.Dataset:
        """Downscale the coarse inputs of ``data``; ``data`` is not modified.

        Returns one float32 variable per target variable of ``data``, named like
        it, with dims (time, lat, lon) and coordinates of ``data.target`` on
        its target domain (without the padding of a MOS pairing), in
        physical units with the attributes of ``data.attrs``. Raises
        :class:`ConfigError` before :meth:`fit` for baselines that learn, and
        :class:`DataError` if ``data`` differs from the training data in scale,
        variables, static fields or (for per-point baselines) grid.
        """
        self._check(data)
        values = self._predict(data)
        coords = {dim: data.target[dim] for dim in ("time", "lat", "lon")}
        predictions = xr.Dataset(
            {
                name: xr.DataArray(
                    values[:, index].astype(np.float32, copy=False),
                    dims=("time", "lat", "lon"),
                    coords=coords,
                    attrs=dict(data.attrs.get(name, {})),
                )
                for index, name in enumerate(data.target_variables)
            }
        )
        return data.in_domain(predictions)

    def _check(self, data: PairedData) -> None:
        if self._layout is not None:
            self._layout.check(data, self.name, grid=self.per_point)
        elif self.requires_fit:
            raise ConfigError(f"the {self.name} baseline learns from training data; call fit(train) first")

    def unavailable(self, data: PairedData) -> str | None:
        """Why this baseline cannot run on data like ``data`` (e.g. no elevation for ``lapse_rate``), or None if it can.

        The reason names what is missing and how to provide it.
        """
        return None

    def _fit(self, train: PairedData) -> None:  # noqa: B027 (a hook: most baselines learn nothing)
        """Learn parameters from ``train``; nothing for baselines that do not learn."""

    @abstractmethod
    def _predict(self, data: PairedData) -> np.ndarray:
        """(time, variable, lat, lon) predictions on the fine grid of ``data``, physical units."""
