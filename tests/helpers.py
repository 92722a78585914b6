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


def era5_week_on_grid(era5_week: xr.Dataset, spacing: float) -> xr.DataArray:
    """The ERA5 t2m remapped conservatively onto a ``spacing`` degree grid whose cells cover the ERA5 cells.

    The ERA5 cells span 49.875..58.125 N and 10.125 W..2.125 E; the coarse cells
    start at those edges, and the outer ones reach beyond them (their values
    are the means over the part they cover).
    """
    from dl4ds.data import Grid, standardize
    from dl4ds.data.regrid import conservative_regrid

    lat = 49.875 + spacing * (0.5 + np.arange(int(np.ceil(8.25 / spacing))))
    lon = -10.125 + spacing * (0.5 + np.arange(int(np.ceil(12.25 / spacing))))
    return conservative_regrid(standardize(era5_week["t2m"]), Grid(lat, lon))


# --- networks ----------------------------------------------------------------------------------------------------

BACKBONES = ("convnet", "resnet", "densenet", "convnext", "unet")
UPSAMPLINGS = ("pin", "spc", "rc", "dc")
SPATIAL = [f"{b}_{u}" for b in BACKBONES for u in UPSAMPLINGS]
ALL_MODELS = SPATIAL + [f"rec{name}" for name in SPATIAL]
REGISTERED = sorted([*ALL_MODELS, "residual_diffusion"])
"""Every registered name: the 40 backbone x upsampling networks and the residual diffusion model."""

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


# --- bad input: refused with the exact error, a message naming the fix, and nothing written ---------------------------


def tree(root) -> set[str]:
    """Every file and folder under ``root``, hidden ones included, as paths relative to it."""
    root = Path(root)
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def assert_refused(call, error: type, fix: str, root) -> str:
    """Check that ``call()`` raises exactly ``error``, with a message matching the regex ``fix``, writing nothing
    under ``root``; returns the message."""
    import re

    import pytest

    before = tree(root)
    with pytest.raises(Exception) as caught:  # the exact class is checked below
        call()
    assert caught.type is error, f"{caught.type.__name__} instead of {error.__name__}: {caught.value}"
    message = str(caught.value)
    assert re.search(fix, message), f"{fix!r} not in: {message}"
    assert tree(root) == before, f"written: {sorted(tree(root) - before)}"
    return message


def assert_refused_by_cli(args, error: type, fix: str, root) -> str:
    """Check that ``dl4ds ARGS`` exits with status 2 and the message of exactly ``error`` matching ``fix``, without a
    traceback and writing nothing under ``root``; returns the output."""
    import re

    from click.testing import CliRunner

    from dl4ds.cli import main

    before = tree(root)
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 2, result.output
    cause = result.exception.__context__ if result.exception is not None else None
    assert type(cause) is error, f"{type(cause).__name__} instead of {error.__name__}: {result.output}"
    assert result.output.startswith("error: ") or "\nerror: " in result.output, result.output
    assert "Traceback" not in result.output
    assert re.search(fix, " ".join(result.output.split())), f"{fix!r} not in: {result.output}"
    assert tree(root) == before, f"written: {sorted(tree(root) - before)}"
    return result.output


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


# --- training runs from YAML, killed and resumed ---------------------------------------------------------------------


def training_config(tmp_path: Path, model: dict, **training) -> dict:
    """A small experiment config (2 training days, 1 validation day of bundled data, 16 x 16 patches) as a dict."""
    return {
        "data": {
            "target": {"path": "bundled:era5_t2m_uk", "variables": ["t2m"]},
            "static": {"path": "bundled:uk_static", "variables": ["elevation", "land_fraction"]},
            "scale": 4,
            "train_period": ["2019-03-01", "2019-03-02"],
            "val_period": ["2019-03-03", "2019-03-03"],
            "patch_size": [16, 16],
        },
        "model": model,
        "training": {"batch_size": 16, "epochs": 4, "seed": 5, **training},
        "output_dir": str(tmp_path / "run"),
    }


def train_command(config_path: Path, *extra: str) -> list[str]:
    """``dl4ds --quiet train CONFIG EXTRA...`` in a fresh interpreter."""
    import sys

    return [sys.executable, "-m", "dl4ds.cli", "--quiet", "train", str(config_path), *extra]


def train_killed_and_resumed(config_path: Path, root: Path, *, ready, epochs: int) -> dict[str, str]:
    """Train ``config_path`` into ``root/straight``, and into ``root/killed`` killed by SIGKILL then resumed.

    The second run is killed as soon as ``ready(checkpoint_dir)`` is true, which
    must happen before its last epoch (asserted from its ``last.pt``), and
    then resumed with ``--resume``. Returns the environment the runs had
    (one OpenMP thread), for further commands.
    """
    import os
    import signal
    import subprocess
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(train_command(config_path, "-o", str(root / "straight")), check=True, env=env, capture_output=True)
    checkpoints = root / "killed" / "checkpoints"
    process = subprocess.Popen(
        train_command(config_path, "-o", str(root / "killed")),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if ready(checkpoints):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert torch.load(checkpoints / "last.pt", weights_only=True)["training_state"]["epoch"] < epochs
    subprocess.run(
        train_command(config_path, "-o", str(root / "killed"), "--resume"), check=True, env=env, capture_output=True
    )
    return env


def assert_same_weights(first: Path, second: Path) -> None:
    """The models of two checkpoints have bit-identical weights."""
    from dl4ds import load_model

    expected = load_model(first).state_dict()
    actual = load_model(second).state_dict()
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=0)


# --- residual diffusion ----------------------------------------------------------------------------------------------

TINY_DIFFUSION = {"regressor_params": SMALL_PARAMS, "n_filters": 8, "depth": 1, "embedding": 8}
"""Parameters of a residual_diffusion model small enough for fast tests."""


# --- hindcasts ---------------------------------------------------------------------------------------------------


def make_hindcast(
    years: int = 6,
    members: int = 5,
    leads: int = 3,
    ny: int = 3,
    nx: int = 4,
    *,
    signal: float = 1.0,
    noise: float = 1.0,
    seed: int = 0,
    start_month: int = 11,
) -> tuple[xr.Dataset, xr.Dataset]:
    """A synthetic monthly hindcast (SEAS5/C3S layout) and the monthly observations of its valid months.

    The hindcast has dims (forecast_reference_time, realization, forecastMonth,
    latitude, longitude) and variable ``tas`` in K; each member is
    ``signal * s + noise * e`` for the observed anomaly ``s`` (standard normal)
    and independent noise ``e``. The observations (``time``, month starts) are
    ``280 + s`` plus a fixed pattern; the forecasts are offset by 2 K.
    """
    rng = np.random.default_rng(seed)
    starts = pd.to_datetime([f"{2000 + year}-{start_month:02d}-01" for year in range(years)])
    lat, lon = 40.0 + np.arange(ny), -5.0 + np.arange(nx)
    state = rng.standard_normal((years, leads, ny, nx))
    pattern = np.linspace(0, 3, ny * nx).reshape(ny, nx)
    members_values = (
        282.0 + pattern + signal * state[:, None] + noise * rng.standard_normal((years, members, leads, ny, nx))
    )
    valid = np.array([[start + pd.DateOffset(months=lead) for lead in range(leads)] for start in starts])
    hindcast = xr.Dataset(
        {
            "tas": (
                ("forecast_reference_time", "realization", "forecastMonth", "latitude", "longitude"),
                members_values.astype(np.float32),
                {"units": "K", "standard_name": "air_temperature"},
            )
        },
        coords={
            "forecast_reference_time": starts,
            "realization": np.arange(1, members + 1),
            "forecastMonth": np.arange(1, leads + 1),
            "latitude": lat,
            "longitude": lon,
            "valid_time": (("forecast_reference_time", "forecastMonth"), valid.astype("datetime64[ns]")),
        },
    )
    times = valid.ravel()
    order = np.argsort(times)
    observed = (280.0 + pattern + state).reshape(years * leads, ny, nx)[order]
    observations = xr.Dataset(
        {"tas": (("time", "latitude", "longitude"), observed.astype(np.float32), {"units": "K"})},
        coords={"time": times[order].astype("datetime64[ns]"), "latitude": lat, "longitude": lon},
    )
    return hindcast, observations


# --- CF conventions: compliance-checker, offline ---------------------------------------------------------------------

CF_VERSION = "1.11"
"""The CF version dl4ds declares (dl4ds.cf.CONVENTIONS), checked with compliance-checker's ``cf:1.11`` suite."""


def cf_problems(path) -> list[str]:
    """Every error and warning (high and medium priority) of compliance-checker's CF suite on a NetCDF file or Zarr store.

    The checker reads its bundled standard-name table, so it runs offline. A
    Zarr store is checked through a NetCDF copy of its raw (undecoded) contents,
    every attribute and data type as stored: netCDF-C's Zarr reader, which the
    checker would use, does not read 0-d arrays (a scalar ``height``), and the
    checker requires a ``.nc`` file name. Skips the test when the checker
    (the ``crosscheck`` extra) is not installed.
    """
    import json
    import tempfile

    import pytest

    pytest.importorskip(
        "compliance_checker", reason='the CF checker is in the crosscheck extra: pip install -e ".[crosscheck]"'
    )
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    with tempfile.TemporaryDirectory() as folder:
        if Path(path).is_dir():
            with xr.open_zarr(path, decode_cf=False) as store:  # fill values stay attributes; none added
                unfilled = {
                    name: {"_FillValue": None} for name in store.variables if "_FillValue" not in store[name].attrs
                }
                store.to_netcdf(Path(folder) / f"{Path(path).stem}.nc", encoding=unfilled)
            path = Path(folder) / f"{Path(path).stem}.nc"
        report = Path(folder) / "report.json"
        _, failed = ComplianceChecker.run_checker(
            str(path), [f"cf:{CF_VERSION}"], 0, "normal", output_filename=str(report), output_format="json"
        )
        results = json.loads(report.read_text())
    crashed = ["error: a check raised an exception on this file (see the warnings above)"] if failed else []
    return crashed + [
        f"{priority.split('_')[0]}: {item['name']}: {'; '.join(item['msgs'])}"
        for checker in results.values()
        for priority in ("high_priorities", "medium_priorities")
        for item in checker.get(priority, [])
        if item["value"][0] < item["value"][1]
    ]
