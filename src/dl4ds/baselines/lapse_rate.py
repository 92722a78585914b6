"""The lapse-rate baseline: interpolation plus a fitted linear correction for the sub-grid elevation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dl4ds.baselines.arrays import block_mean, coarse_targets, interpolate_valid
from dl4ds.baselines.base import Baseline
from dl4ds.baselines.options import LapseRateOptions
from dl4ds.data import units
from dl4ds.data.pairing import PairedData
from dl4ds.errors import DataError
from dl4ds.utils.interpolation import InterpolationMode

STANDARD_GRAVITY = 9.80665  # m s-2, converts geopotential (m2 s-2) to height (m)
ELEVATION_NAMES = ("elevation", "orography", "orog", "altitude", "height", "hgt", "z", "topo")


class LapseRate(Baseline):
    """Interpolation plus a linear elevation correction with a fitted rate per variable.

    ``interp(coarse) + rate * (z - interp(block_average(z)))`` where ``z`` (m)
    is the elevation static field on the fine grid: the sub-grid elevation
    anomaly times a rate, e.g. about -6.5e-3 K/m for temperature. Each rate is
    the least-squares slope (no intercept) of the residual ``truth -
    interp(coarse)`` on the elevation anomaly over every valid training value.
    The elevation is converted to m from any length unit (km, ft...), and
    geopotential (units of m2 s-2) to height; without units it is taken to be
    in m. Cells without an elevation get no correction.

    Args:
        options: the :class:`~dl4ds.baselines.options.LapseRateOptions`
            (``elevation``, the static variable holding the elevation, by
            default the first static variable named, case-insensitively, one
            of :data:`ELEVATION_NAMES`; ``interpolation``, ``nearest``,
            ``bilinear`` or ``bicubic``), or a mapping of them.
        **overrides: single options, e.g. ``elevation="orog"``.

    Attributes:
        rates_: after :meth:`fit`, ``{variable: rate}`` in the variable's units per metre.
    """

    name = "lapse_rate"

    def __init__(self, options: LapseRateOptions | Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__()
        what = "options for the lapse_rate baseline"
        self.options = LapseRateOptions.parse(options or {}, what).updated(what, **overrides)
        self.elevation = self.options.elevation
        self.interpolation: InterpolationMode = self.options.interpolation
        self.rates_: dict[str, float] = {}

    def unavailable(self, data: PairedData) -> str | None:
        try:
            self._elevation_name(data)
        except DataError as error:
            return str(error)
        return None

    def _elevation_name(self, data: PairedData) -> str:
        available = data.static_variables
        if not available:
            raise DataError(
                "the lapse_rate baseline needs an elevation static field but the data has no static fields; "
                "pair the data with static=<a dataset holding the elevation in m>"
            )
        if self.elevation is not None:
            if self.elevation not in available:
                raise DataError(
                    f"the static fields {list(available)} do not include the elevation {self.elevation!r}; "
                    "set the lapse_rate option elevation to one of them"
                )
            return self.elevation
        by_lower_name = {name.lower(): name for name in available}
        for candidate in ELEVATION_NAMES:
            if candidate in by_lower_name:
                return by_lower_name[candidate]
        raise DataError(
            f"none of the static fields {list(available)} is named like an elevation ({', '.join(ELEVATION_NAMES)}); "
            "set the lapse_rate option elevation to the static variable that holds it"
        )

    def _elevation_anomaly(self, data: PairedData) -> np.ndarray:
        """(lat, lon) float64 elevation minus its interpolated block average, in m; NaN without elevation."""
        name = self._elevation_name(data)
        assert data.static is not None, "_elevation_name raises without static fields"
        elevation = _in_metres(data.static.sel(channel=name).values.astype(np.float64), name, data)
        coarse = block_mean(elevation, data.scale)
        return elevation - interpolate_valid(coarse, data.scale, self.interpolation)

    def _fit(self, train: PairedData) -> None:
        anomaly = self._elevation_anomaly(train)
        interpolated = interpolate_valid(coarse_targets(train), train.scale, self.interpolation)
        rates = {}
        for index, name in enumerate(train.target_variables):
            residual = train.target.values[:, index] - interpolated[:, index]
            valid = ~np.isnan(residual) & ~np.isnan(anomaly)
            dz = np.where(valid, anomaly, 0.0)
            spread = np.sum(dz * dz, dtype=np.float64)
            if spread == 0:
                raise DataError(
                    f"the elevation does not vary within the coarse cells where {name} has training data, so no "
                    "lapse rate can be fitted; use the bilinear baseline or a static field with sub-grid relief"
                )
            rates[name] = float(np.sum(dz * np.where(valid, residual, 0.0), dtype=np.float64) / spread)
        self.rates_ = rates

    def _predict(self, data: PairedData) -> np.ndarray:
        correction = np.nan_to_num(self._elevation_anomaly(data)).astype(np.float32)
        rates = np.array([self.rates_[name] for name in data.target_variables], dtype=np.float32)
        fine = interpolate_valid(coarse_targets(data), data.scale, self.interpolation)
        return fine + rates[:, None, None] * correction


def _in_metres(elevation: np.ndarray, name: str, data: PairedData) -> np.ndarray:
    """The static field ``name`` as a height in m: converted from its length units, or from geopotential."""
    given = data.attrs.get(name, {}).get("units")
    if given is None:
        return elevation
    what = f"the elevation static field {name!r}"
    kind = units.parse(given, what=what).dimensionality
    if kind == units.parse("m2 s-2", what="geopotential").dimensionality:
        return (
            units.conversion(given, "m2 s-2", what=what, reference="geopotential").apply(elevation) / STANDARD_GRAVITY
        )
    return units.conversion(given, "m", what=what, reference="an elevation in m").apply(elevation)
