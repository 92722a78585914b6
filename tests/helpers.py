"""Helpers shared by the tests: small synthetic fields, small networks and their inputs.

Tests import them from here (``from helpers import make_field``); the
``tests`` folder is on the path (``pythonpath`` in pyproject.toml).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from dl4ds import networks

FIXTURES = Path(__file__).with_name("fixtures")
"""Files committed for the tests (checkpoints written by earlier releases, their inputs and outputs)."""

SMALL_PARAMS = {"n_filters": 16, "n_blocks": 1}


def make_field(
    values: np.ndarray,
    *,
    lat0: float = 50.0,
    lon0: float = -10.0,
    step: float = 0.25,
    start: str = "2019-03-01",
    freq: str = "1D",
    name: str = "t2m",
) -> xr.DataArray:
    """A (time, latitude, longitude) DataArray in K on a regular grid with ascending coordinates."""
    nt, ny, nx = values.shape
    return xr.DataArray(
        values.astype(np.float32),
        dims=("time", "latitude", "longitude"),
        coords={
            "time": pd.date_range(start, periods=nt, freq=freq),
            "latitude": lat0 + step * np.arange(ny),
            "longitude": lon0 + step * np.arange(nx),
        },
        name=name,
        attrs={"units": "K", "standard_name": "air_temperature"},
    )


# --- networks ----------------------------------------------------------------------------------------------------

BACKBONES = ("convnet", "resnet", "densenet", "convnext", "unet")
UPSAMPLINGS = ("pin", "spc", "rc", "dc")
SPATIAL = [f"{b}_{u}" for b in BACKBONES for u in UPSAMPLINGS]
ALL_MODELS = SPATIAL + [f"rec{name}" for name in SPATIAL]

_SMALL_BACKBONE = {
    "convnet": {"n_filters": 8, "n_blocks": 1},
    "resnet": {"n_filters": 8, "n_blocks": 1},
    "densenet": {"n_filters": 8, "n_blocks": 1, "growth_rate": 4, "layers_per_block": 2},
    "convnext": {"n_filters": 8, "n_blocks": 1},
    "unet": {"n_filters": 8, "depth": 1},
}


def small_params(name: str) -> dict:
    """Parameters making ``name`` small enough for fast tests."""
    spatial = name.removeprefix("rec")
    backbone, upsampling = spatial.split("_")
    params = dict(_SMALL_BACKBONE[backbone])
    if upsampling != "pin":
        params |= {"static_filters": 4, "upsampled_filters": 4}
    if name.startswith("rec"):
        params["lstm_filters"] = 2
    return params


def small_model(
    name: str = "resnet_spc",
    scale: int = 4,
    in_channels: int = 2,
    out_channels: int = 1,
    static_channels: int = 2,
    **params,
):
    return networks.create(
        name,
        scale=scale,
        in_channels=in_channels,
        out_channels=out_channels,
        static_channels=static_channels,
        **{**small_params(name), **params},
    )


def inputs(name: str, batch: int, channels: int, h: int, w: int, steps: int = 3) -> torch.Tensor:
    """Random coarse inputs: (B, C, h, w), or (B, T, C, h, w) windows for rec* models."""
    return torch.randn(batch, steps, channels, h, w) if name.startswith("rec") else torch.randn(batch, channels, h, w)


# --- scores on a 3 x 2 x 2 field ----------------------------------------------------------------------------------------------------

TIMES = pd.date_range("2019-03-01", periods=3, freq="h")
TRUTH = np.array(
    [
        [[280.0, 281.0], [282.0, 283.0]],
        [[284.0, 285.0], [286.0, 287.0]],
        [[279.0, 288.0], [290.0, 281.0]],
    ]
)
# prediction - truth; sum 4, sum of |.| 12, sum of squares 22 over 12 points
ERRORS = np.array(
    [
        [[1.0, -1.0], [2.0, 0.0]],
        [[0.0, 0.0], [1.0, 1.0]],
        [[-2.0, 0.0], [3.0, -1.0]],
    ]
)


def field(values, lat=(0.0, 60.0), lon=(10.0, 11.0), names=("time", "lat", "lon"), units="K"):
    return xr.DataArray(
        np.asarray(values, dtype=np.float64),
        dims=names,
        coords={names[0]: TIMES[: len(values)], names[1]: list(lat), names[2]: list(lon)},
        attrs={"units": units},
    )


# --- tuning ----------------------------------------------------------------------------------------------------


def tuning_config(tmp_path: Path, parameters: dict, *, name: str = "tune", training: dict | None = None, **search):
    """Write a tiny tuning config (a small resnet_spc, 1 day each of training, validation and test) to ``tmp_path``.

    ``parameters`` is the search space; ``search`` other fields of the ``search:`` section.
    """
    import yaml

    config = {
        "data": {
            "target": {"path": "bundled:era5_t2m_uk", "variables": ["t2m"]},
            "static": {"path": "bundled:uk_static"},
            "scale": 4,
            "train_period": ["2019-03-01", "2019-03-01"],
            "val_period": ["2019-03-02", "2019-03-02"],
            "test_period": ["2019-03-03", "2019-03-03"],
        },
        "model": {"name": "resnet_spc", "params": {"n_filters": 8, "n_blocks": 1, "static_filters": 4}},
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 0.003, **(training or {})},
        "output_dir": "out",
        "search": {"parameters": parameters, "sampler": {"startup_trials": 2}, **search},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
