"""Comparison and score maps are written as complete image files."""

import sys

import numpy as np
import pytest

from dl4ds import datasets
from dl4ds.errors import DataError
from dl4ds.evaluation import plot_comparison, plot_metric_maps, rmse_map

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def t2m():
    return datasets.era5_t2m_uk()["t2m"]


@pytest.fixture(scope="module")
def panels(t2m):
    truth = t2m.isel(time=12)
    coarse = truth.coarsen(latitude=4, longitude=4, boundary="trim").mean()
    coarse.attrs = truth.attrs
    rng = np.random.default_rng(1)
    bicubic = truth + rng.normal(0.0, 0.5, truth.shape).astype(np.float32)
    bicubic.attrs = truth.attrs
    return {"coarse input": coarse, "bicubic": bicubic, "truth": truth}


def assert_png_written(path, returned):
    assert returned == path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "temporary file left behind"


def test_comparison_with_coarse_panel_on_another_grid(tmp_path, panels):
    path = tmp_path / "comparison.png"
    returned = plot_comparison(panels, path, title="ERA5 t2m, x4")
    assert_png_written(path, returned)


def test_comparison_accepts_str_path_single_time_and_creates_directory(tmp_path, t2m):
    truth = t2m.isel(time=slice(5, 6))  # size-1 time dimension is squeezed
    path = tmp_path / "figures" / "one.png"
    returned = plot_comparison({"truth": truth, "copy": truth + 0.1}, str(path))
    assert_png_written(path, returned)


def test_comparison_overwrites_existing_file(tmp_path, panels):
    path = tmp_path / "comparison.png"
    path.write_bytes(b"old")
    plot_comparison(panels, path)
    assert_png_written(path, path)


def test_comparison_without_truth_and_with_missing_values(tmp_path, panels):
    masked = panels["truth"].where(panels["truth"] > 281.0)  # NaNs drawn as missing
    path = tmp_path / "maps.png"
    assert_png_written(
        path, plot_comparison({"masked": masked, "coarse": panels["coarse input"]}, path, truth_key=None)
    )


def test_comparison_rejects_bad_input(tmp_path, panels, t2m):
    with pytest.raises(DataError, match="truth_key"):
        plot_comparison({"bicubic": panels["bicubic"]}, tmp_path / "x.png")
    with pytest.raises(DataError, match="isel"):
        plot_comparison({"truth": t2m.isel(time=slice(0, 3))}, tmp_path / "x.png")
    with pytest.raises(DataError, match="non-empty"):
        plot_comparison({}, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_metric_maps(tmp_path, t2m):
    truth = t2m.isel(time=slice(0, 24))
    rng = np.random.default_rng(2)
    maps = {
        "bicubic": rmse_map(truth + rng.normal(0.0, 0.6, truth.shape), truth),
        "network": rmse_map(truth + rng.normal(0.0, 0.3, truth.shape), truth),
    }
    path = tmp_path / "rmse.png"
    assert_png_written(path, plot_metric_maps(maps, path, title="RMSE per grid point"))


def test_plotting_does_not_need_pyplot(tmp_path, panels):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot_comparison(panels, tmp_path / "a.png")
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
