"""Shared fixtures: bundled real data and pairs of it, loaded once per session, and a small trained model."""

import pytest
import xarray as xr
from helpers import SMALL_PARAMS

from dl4ds import datasets


@pytest.fixture(scope="session")
def era5() -> xr.Dataset:
    """ERA5 2 m temperature over the British Isles, March 2019 (744 hourly steps)."""
    return datasets.era5_t2m_uk()


@pytest.fixture(scope="session")
def era5_week(era5: xr.Dataset) -> xr.Dataset:
    """The first 7 days of the ERA5 data, every third hour (56 steps)."""
    return era5.sel(time=slice("2019-03-01", "2019-03-07")).isel(time=slice(None, None, 3))


@pytest.fixture(scope="session")
def static() -> xr.Dataset:
    return datasets.uk_static()


@pytest.fixture(scope="session")
def week_pairs(era5_week, static):
    """PerfectProg x4 pairs of the ERA5 week with elevation and land fraction."""
    from dl4ds.data import PerfectProg

    return PerfectProg(scale=4).pair(era5_week, static=static)


@pytest.fixture(scope="session")
def trained_model(week_pairs):
    """A small resnet_spc trained for 3 epochs on days 1-5 of the ERA5 week."""
    import torch

    from dl4ds.data import DownscalingDataset, Normalizer
    from dl4ds.model import DownscalingModel
    from dl4ds.training import SupervisedTrainer

    torch.manual_seed(0)
    train = week_pairs.select_time("2019-03-01", "2019-03-05")
    normalizer = Normalizer.fit(train)
    model = DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)
    SupervisedTrainer(epochs=3, batch_size=8, learning_rate=3e-3, progress=False).fit(
        model, DownscalingDataset(train, normalizer)
    )
    return model


@pytest.fixture(scope="session")
def trained_checkpoint(trained_model, tmp_path_factory):
    """The path of ``trained_model`` saved as a checkpoint (read it, never write it)."""
    from dl4ds.model import save_checkpoint

    return save_checkpoint(tmp_path_factory.mktemp("checkpoint") / "model.pt", trained_model)


@pytest.fixture(scope="session")
def coarse_file(week_pairs, tmp_path_factory):
    """A NetCDF file of the coarse inputs of the last two days of the ERA5 week, on ``trained_model``'s grid."""
    path = tmp_path_factory.mktemp("coarse") / "coarse.nc"
    week_pairs.select_time("2019-03-06", "2019-03-07").input_dataset().to_netcdf(path)
    return path
