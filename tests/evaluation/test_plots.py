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


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions draw, instead of writing them."""
    from dl4ds.evaluation import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    return figures


def map_line_collections(ax):
    from matplotlib.collections import LineCollection

    return [c for c in ax.collections if isinstance(c, LineCollection)]


@pytest.mark.parametrize("shift", [0.0, 360.0])
def test_every_map_has_coastlines_and_borders_in_degrees(drawn, panels, shift):
    """Natural Earth lines over the British Isles (the Irish border included), also for longitudes in 0..360."""
    fields = {
        key: field.assign_coords(longitude=(field["longitude"] + shift) % 360.0 if shift else field["longitude"])
        for key, field in panels.items()
    }
    plot_comparison(fields, "unused.png")
    axes = [ax for ax in drawn[0].axes if ax.collections and ax.get_label() != "<colorbar>"]
    assert len(axes) == 4  # 3 fields, the error of the one on the truth grid
    for ax in axes:
        coast, border = map_line_collections(ax)
        points = np.concatenate(coast.get_segments())
        west, east = ax.get_xlim()
        assert len(coast.get_segments()) > 10 and len(border.get_segments()) >= 1
        inside = (points[:, 0] > west) & (points[:, 0] < east) & (points[:, 1] > 50) & (points[:, 1] < 58)
        assert inside.sum() > 500  # the lines that cross the map (they may reach beyond it)
        assert ax.xaxis.get_major_formatter()(west + 1.0, 0).endswith("\N{DEGREE SIGN}")


def test_ratio_maps_diverge_about_one_and_biases_about_zero(drawn, t2m):
    from dl4ds.evaluation.report import _map_style

    truth = t2m.isel(time=slice(0, 24))
    ratio = {"a": truth.std("time") / truth.std("time").mean() * 0.9, "b": truth.std("time") * 0 + 1.3}
    plot_metric_maps(ratio, "unused.png", **_map_style("std_ratio"))
    plot_metric_maps({"a": truth.isel(time=0) - 281.0}, "unused.png", **_map_style("bias"))
    for figure, centre in zip(drawn, (1.0, 0.0)):
        mesh = next(c for c in figure.axes[0].collections if hasattr(c, "norm"))
        assert mesh.norm.vmin + mesh.norm.vmax == pytest.approx(2 * centre)
        assert mesh.get_cmap().name in ("PuOr_r", "RdBu_r")
    assert _map_style("spectral_ratio")["centre"] == 1.0 and _map_style("rmse")["scale"] == "zero"
