"""Verifying a downscaled dataset against a truth dataset."""

from __future__ import annotations

import xarray as xr

from dl4ds.data.grid import Grid, align_longitudes, standardize
from dl4ds.errors import DataError
from dl4ds.evaluation.metrics import compute_metrics


def truth_on_prediction_grid(prediction: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """The window of a standardized ``truth`` matching ``prediction``'s grid.

    A model's output grid is often a crop of the truth grid (to a multiple of
    the scale). Raises :class:`DataError` if the prediction grid is not a window
    of the truth grid.
    """
    truth = align_longitudes(truth, prediction["lon"].values)
    window = Grid.of(prediction).window_in(Grid.of(truth))
    if window is None:
        raise DataError(
            f"the prediction grid ({Grid.of(prediction).describe()}) is not part of the truth grid "
            f"({Grid.of(truth).describe()}); regrid one of them first"
        )
    return truth.isel(lat=window[0], lon=window[1]).assign_coords(lat=prediction["lat"], lon=prediction["lon"])


def compare_datasets(
    prediction: xr.Dataset, truth: xr.Dataset, *, variable: str | None = None
) -> dict[str, dict[str, float]]:
    """Metrics of each shared variable (or ``variable``) over the common times: ``{variable: {metric: value}}``."""
    names = [variable] if variable else [str(v) for v in prediction.data_vars if v in truth.data_vars]
    if not names:
        raise DataError(
            f"the prediction ({sorted(map(str, prediction.data_vars))}) and truth ({sorted(map(str, truth.data_vars))}) "
            "share no variable; choose one with --variable / variable=..."
        )
    for name, ds, role in [(n, d, r) for n in names for d, r in ((prediction, "prediction"), (truth, "truth"))]:
        if name not in ds.data_vars:
            raise DataError(f"the {role} has no variable {name!r}; it has {sorted(map(str, ds.data_vars))}")
    results = {}
    for name in names:
        predicted = standardize(prediction[name], require_time=False)
        observed = truth_on_prediction_grid(predicted, standardize(truth[name], require_time=False))
        results[name] = compute_metrics(predicted, observed)
    return results
