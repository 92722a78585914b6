"""Data sources: several files (lists, globs), variables at a level, several predictor sources, units set in the config."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dl4ds.data import PerfectProg, Source
from dl4ds.data.fields import select_variables
from dl4ds.errors import ConfigError, DataError
from dl4ds.experiment import Experiment
from dl4ds.experiment.config import ExperimentConfig
from dl4ds.io import open_data, write_netcdf


def pressure_levels(era5_week: xr.Dataset) -> xr.Dataset:
    """A stand-in for pressure-level data: ta and z on 1000/850/500 hPa (in Pa, as in CMIP files), on the ERA5 grid."""
    plev = xr.DataArray(
        [100000.0, 85000.0, 50000.0], dims="plev", attrs={"units": "Pa", "standard_name": "air_pressure"}
    )
    ta = (era5_week["t2m"] - 0.0065 * (1 - plev / 100000.0) * 9000).assign_attrs(units="K")
    z = (9.81 * 9000 * (1 - plev / 100000.0) + 0 * era5_week["t2m"]).assign_attrs(units="m2 s-2")
    return xr.Dataset({"ta": ta, "z": z}).assign_coords(plev=plev).transpose("time", "plev", ...)


def test_lists_and_globs_of_files_open_as_one_dataset(era5_week, tmp_path):
    for index, days in enumerate((slice("2019-03-01", "2019-03-03"), slice("2019-03-04", "2019-03-07"))):
        write_netcdf(era5_week.sel(time=days), tmp_path / f"t2m_{index}.nc")
    by_glob = open_data(tmp_path / "t2m_*.nc")
    by_list = open_data([tmp_path / "t2m_0.nc", str(tmp_path / "t2m_1.nc")])
    for opened in (by_glob, by_list):
        assert opened["t2m"].chunks is not None  # lazy
        np.testing.assert_array_equal(opened["t2m"].values, era5_week["t2m"].values)
    with pytest.raises(DataError, match="no file matches the pattern"):
        open_data(tmp_path / "nothing_*.nc")
    with pytest.raises(DataError, match="does not exist"):
        open_data([tmp_path / "t2m_0.nc", tmp_path / "missing.nc"])
    write_netcdf(era5_week.isel(latitude=slice(0, 20)).rename(t2m="other"), tmp_path / "t2m_other.nc")
    with pytest.raises(DataError, match="cannot open the 3 files.*same grid"):
        open_data(tmp_path / "t2m_*.nc")


def test_a_variable_may_name_a_level_in_any_pressure_units(era5_week):
    levels = pressure_levels(era5_week)
    selected = select_variables(levels, ["ta@850hPa", "z@50000", "ta@1000 hPa"], role="predictor")
    np.testing.assert_array_equal(selected["ta@850hPa"].values, levels["ta"].sel(plev=85000.0).values)
    np.testing.assert_array_equal(selected["z@50000"].values, levels["z"].sel(plev=50000.0).values)
    assert "plev" not in selected.coords and selected["ta@850hPa"].attrs["units"] == "K"
    with pytest.raises(DataError, match="no level 70000 Pa .*levels are 100000, 85000, 50000"):
        select_variables(levels, ["ta@700hPa"], role="predictor")
    with pytest.raises(DataError, match="no vertical dimension"):
        select_variables(era5_week, ["t2m@850hPa"], role="predictor")
    with pytest.raises(DataError, match="'ta@850 parsecs'.*measure different quantities"):
        select_variables(levels, ["ta@850 parsecs"], role="predictor")
    with pytest.raises(DataError, match="does not name a variable at a level"):
        select_variables(levels, ["ta@high"], role="predictor")
    with pytest.raises(
        DataError, match="select one value of \\['plev'\\] first: a level by naming it, e.g. 'ta@850hPa'"
    ):
        PerfectProg(scale=4).pair(era5_week, predictors=Source(levels, ["ta"]))


def test_predictors_from_several_sources_with_levels(era5_week):
    levels = pressure_levels(era5_week)
    previous = era5_week["t2m"].shift(time=1).fillna(era5_week["t2m"]).rename("t2m_previous")
    paired = PerfectProg(scale=4).pair(
        era5_week, predictors=[Source(levels, ["ta@850hPa", "z@500hPa"]), Source(previous, regrid="conservative")]
    )
    assert paired.input_variables == ("t2m", "ta@850hPa", "z@500hPa", "t2m_previous")
    assert paired.attrs["z@500hPa"]["units"] == "m2 s-2"
    with pytest.raises(ConfigError, match="repeat \\['t2m'\\]"):
        PerfectProg(scale=4).pair(era5_week, predictors=[Source(era5_week)])


def test_config_sources_take_globs_lists_levels_and_units(era5_week, tmp_path):
    for index, days in enumerate((slice("2019-03-01", "2019-03-03"), slice("2019-03-04", "2019-03-07"))):
        write_netcdf(era5_week.sel(time=days), tmp_path / f"t2m_{index}.nc")
        coarse = era5_week.sel(time=days).coarsen(latitude=4, longitude=4, boundary="trim").mean() - 273.15
        coarse["t2m"].attrs = {}  # the file has no units: the config sets them
        write_netcdf(coarse.rename(t2m="t2m_model"), tmp_path / f"coarse_{index}.nc")
    write_netcdf(pressure_levels(era5_week), tmp_path / "levels.nc")
    raw = {
        "data": {
            "target": {"path": "t2m_*.nc", "variables": ["t2m"]},
            "coarse": {
                "path": ["coarse_0.nc", "coarse_1.nc"],
                "variables": ["t2m_model"],
                "units": {"t2m_model": "degC"},
            },
            "predictors": [{"path": "levels.nc", "variables": ["ta@850hPa"]}, {"path": "t2m_0.nc", "variables": []}],
            "pairing": "mos",
            "train_period": ["2019-03-01", "2019-03-05"],
        }
    }
    with pytest.raises(DataError, match="has no data variables"):
        Experiment(ExperimentConfig.from_dict(raw, base_dir=tmp_path)).pair()
    raw["data"]["predictors"] = raw["data"]["predictors"][:1]
    config = ExperimentConfig.from_dict(raw, base_dir=tmp_path)
    assert config.data.scale is None and config.data.predictor_sources[0].path == str(tmp_path / "levels.nc")
    paired = Experiment(config).pair()
    assert paired.input_variables == ("t2m_model", "ta@850hPa") and paired.scale == 4
    assert paired.attrs["t2m_model"]["units"] == "K"
    np.testing.assert_allclose(
        float(paired.inputs.sel(channel="t2m_model").mean()), float(era5_week["t2m"].mean()), atol=0.5
    )
    assert pd.Index(paired.times).equals(pd.Index(era5_week["time"].values))


def test_config_refuses_a_perfect_prog_without_scale_and_a_regridded_target():
    base = {"target": {"path": "x.nc"}, "train_period": ["2019-03-01", "2019-03-05"]}
    with pytest.raises(ConfigError, match="perfect_prog' needs a scale"):
        ExperimentConfig.from_dict({"data": base})
    with pytest.raises(ConfigError, match="target.regrid"):
        ExperimentConfig.from_dict({"data": {**base, "scale": 4, "target": {"path": "x.nc", "regrid": "linear"}}})
