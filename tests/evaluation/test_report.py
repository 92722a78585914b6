"""The verification report: complete, self-consistent files from hand-built scores, written all or nothing."""

import base64
import dataclasses
import html.parser
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import cf_problems

from dl4ds.errors import DataError, OutputError
from dl4ds.evaluation import plots
from dl4ds.evaluation.report import write_report
from dl4ds.evaluation.scores import Scores, metric_info, skill_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPORT_FILES = {"index.html", "metrics.nc", "metrics.csv", "metrics.md", "skill.csv", "skill.md", "figures"}
OVERALL = ("bias", "mae", "rmse", "correlation", "psnr", "ssim", "p98_bias", "crps", "max_bias")
PER_SAMPLE = ("bias", "rmse", "correlation", "ssim")
MAPS = ("bias", "correlation", "crps")  # diverging, robust and zero-based colour scales


def make_scores(
    models=("resnet_spc", "bicubic", "bcsd"),
    *,
    variable="t2m",
    units="K",
    ensemble=None,
    grouped=True,
    shape=(6, 8),
    times=10,
    seed=0,
):
    """Plausible Scores of ``models``; ``ensemble`` names the one with CRPS and a rank histogram (9 members)."""
    rng = np.random.default_rng(seed)
    models = list(models)
    quality = np.linspace(0.6, 1.4, len(models))  # the first model is the best

    def metric(name, values, dims):
        info = metric_info(name)
        values = np.asarray(values, dtype=np.float64)
        if name == "crps":  # the ensemble's only
            values[[m != ensemble for m in models]] = np.nan
        return xr.DataArray(values, dims=dims, attrs={"long_name": info.long_name, "units": info.units_for(units)})

    def value(name, size):
        q = quality.reshape((-1,) + (1,) * len(size))
        noise = rng.normal(0.0, 0.05, (len(models), *size))
        if name in ("correlation", "ssim"):
            return np.clip(1.0 - 0.05 * q + 0.01 * noise, -1, 1)
        if name == "psnr":
            return 30.0 - 5.0 * q + noise
        if name.endswith("bias"):
            return 0.3 * (q - 1.0) + noise
        return np.abs(q + noise)

    model = {"model": models}
    time = pd.date_range("2019-03-01", periods=times, freq="D")
    lat = 50.0 + 0.25 * np.arange(shape[0])
    lon = -5.0 + 0.25 * np.arange(shape[1])
    overall = xr.Dataset({n: metric(n, value(n, ()), ("model",)) for n in OVERALL}, coords=model)
    per_sample = xr.Dataset(
        {n: metric(n, value(n, (times,)), ("model", "time")) for n in PER_SAMPLE}, coords={**model, "time": time}
    )
    maps = xr.Dataset(
        {n: metric(n, value(n, shape), ("model", "lat", "lon")) for n in MAPS},
        coords={**model, "lat": lat, "lon": lon},
    )
    groups = None
    if grouped:
        groups = xr.Dataset(
            {n: metric(n, value(n, (2,)), ("model", "season")) for n in ("bias", "rmse")},
            coords={**model, "season": ["DJF", "MAM"]},
        )
    wavenumber = 0.002 * np.arange(1, 9)
    truth_power = 1e-3 * wavenumber**-2.0
    spectrum = xr.Dataset(
        {
            "power": (("model", "wavenumber"), truth_power * np.exp(-quality[:, None] * wavenumber / 0.01)),
            "truth_power": ("wavenumber", truth_power, {"long_name": "power of the truth", "units": "K2 km"}),
        },
        coords={
            **model,
            "wavenumber": ("wavenumber", wavenumber, {"long_name": "wavenumber", "units": "km-1"}),
            "wavelength": ("wavenumber", 1.0 / wavenumber, {"long_name": "wavelength", "units": "km"}),
        },
    )
    spectrum["power"].attrs = {"long_name": "power of the prediction", "units": "K2 km"}
    probability = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    truth_quantiles = 280.0 + 5.0 * (probability - 0.5)
    quantiles = xr.Dataset(
        {
            "prediction": (("model", "probability"), truth_quantiles * (1 + 0.001 * (quality[:, None] - 1))),
            "truth": ("probability", truth_quantiles),
        },
        coords={**model, "probability": probability},
    )
    rank_histogram = None
    if ensemble is not None:
        frequencies = np.full((len(models), 10), np.nan)
        counts = rng.integers(5, 15, 10).astype(float)
        frequencies[models.index(ensemble)] = counts / counts.sum()
        rank_histogram = xr.DataArray(
            frequencies,
            dims=("model", "rank"),
            coords={**model, "rank": np.arange(10)},
            attrs={"long_name": "rank frequency", "units": "1"},
        )
    return Scores(variable, units, overall, per_sample, maps, groups, spectrum, quantiles, rank_histogram)


def example_fields(shape=(6, 8)):
    rng = np.random.default_rng(3)
    truth = xr.DataArray(
        280.0 + rng.normal(0, 2, shape),
        dims=("lat", "lon"),
        coords={
            "lat": 50.0 + 0.25 * np.arange(shape[0]),
            "lon": -5.0 + 0.25 * np.arange(shape[1]),
            "time": np.datetime64("2019-03-05T12:00"),
        },
        attrs={"units": "K", "long_name": "2 m temperature"},
    )
    return {"truth": truth, "resnet_spc": truth + rng.normal(0, 0.3, shape), "bicubic": truth + 1.0}


@pytest.fixture(scope="module")
def scores():
    return {
        "t2m": make_scores(models=("resnet_spc", "bicubic", "ensemble"), ensemble="ensemble"),
        # another grid, other times and models: its dimensions get a suffix in metrics.nc
        "pr": make_scores(
            models=("resnet_spc", "bicubic"),
            variable="pr",
            units="mm/day",
            grouped=False,
            shape=(5, 5),
            times=7,
            seed=1,
        ),
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory, scores):
    directory = tmp_path_factory.mktemp("report") / "out"
    index = write_report(
        scores,
        directory,
        title="Test <report>",
        examples={"t2m": example_fields()},
        notes=["baselines fitted on 2019-03-01..2019-03-21", "a & b <c>"],
    )
    return index


class SourceParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.figures, self.tags = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "figure":
            self.figures.append(attrs["id"])
        if tag == "a":
            self.links.append(attrs["href"])


def parse(index):
    parser = SourceParser()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def figure_names(directory):
    return {path.name for path in (directory / "figures").iterdir()}


def test_report_files_and_page_links(report):
    directory = report.parent
    assert report.name == "index.html"
    assert {path.name for path in directory.iterdir()} == REPORT_FILES, "only the report, no temporaries"
    parser = parse(report)
    names = figure_names(directory)
    # every figure is embedded (the page is one file), as the PNG beside it
    assert sorted(parser.figures) == sorted(name.removesuffix(".png") for name in names)
    for figure, source in zip(parser.figures, parser.images):
        assert source.startswith("data:image/png;base64,")
        png = base64.b64decode(source.removeprefix("data:image/png;base64,"))
        assert png[:8] == PNG_MAGIC and png == (directory / "figures" / f"{figure}.png").read_bytes()
    for link in parser.links:
        if not link.startswith("#"):
            assert not link.startswith(("/", "http")), "links must be relative"
            assert (directory / link).is_file()
    assert "script" not in parser.tags and "link" not in parser.tags
    page = report.read_text(encoding="utf-8")
    assert "<h1>Test &lt;report&gt;</h1>" in page and "a &amp; b &lt;c&gt;" in page
    assert "baselines fitted on 2019-03-01..2019-03-21" in page


def test_figures_with_optional_data(report):
    assert figure_names(report.parent) == {
        "t2m_example.png",
        "t2m_spectrum.png",
        "t2m_quantiles.png",
        "t2m_per_sample.png",
        "t2m_grouped.png",
        "t2m_rank_histogram.png",
        "t2m_map_bias.png",
        "t2m_map_correlation.png",
        "t2m_map_crps.png",  # the ensemble's only
        "pr_spectrum.png",
        "pr_quantiles.png",
        "pr_per_sample.png",
        "pr_map_bias.png",
        "pr_map_correlation.png",  # no CRPS without an ensemble
    }


def test_page_shows_every_overall_value_and_marks_the_best(report, scores):
    page = report.read_text(encoding="utf-8")
    for item in scores.values():
        for name, values in item.overall.data_vars.items():
            for value in values.values:
                if np.isfinite(value):
                    assert f">{value:.4g}<" in page, (name, value)
    best_rmse = scores["t2m"].overall["rmse"].min().item()
    assert f'<td class="num best">{best_rmse:.4g}</td>' in page
    best_psnr = scores["t2m"].overall["psnr"].max().item()  # perfect is +inf
    assert f'<td class="num best">{best_psnr:.4g}</td>' in page


def test_netcdf_round_trip(report, scores):
    with xr.open_dataset(report.parent / "metrics.nc") as saved:
        saved = saved.load()
    t2m, pr = scores["t2m"], scores["pr"]
    expected = {
        "t2m_rmse": t2m.overall["rmse"],
        "t2m_crps": t2m.overall["crps"],
        "t2m_ssim_time": t2m.per_sample["ssim"],
        "t2m_bias_map": t2m.maps["bias"],
        "t2m_rmse_season": t2m.grouped["rmse"],
        "t2m_crps_map": t2m.maps["crps"],
        "t2m_power": t2m.spectrum["power"],
        "t2m_truth_power": t2m.spectrum["truth_power"],
        "t2m_quantile_prediction": t2m.quantiles["prediction"],
        "t2m_quantile_truth": t2m.quantiles["truth"],
        "t2m_rank_histogram": t2m.rank_histogram,
        "t2m_skill_rmse": skill_scores(t2m, ["bicubic"])["rmse"],
        "pr_correlation_map": pr.maps["correlation"],
        "pr_correlation": pr.overall["correlation"],
    }
    for name, original in expected.items():
        values = saved[name]
        np.testing.assert_allclose(values.values, original.values, rtol=1e-6, equal_nan=True, err_msg=name)
        assert original.attrs.items() <= values.attrs.items(), name
    assert saved["t2m_rmse"].attrs == {"long_name": "root mean square error", "units": "K"}
    assert saved["pr_quantile_truth"].attrs == {"long_name": "quantiles of the truth", "units": "mm/day"}
    assert list(saved["model_label"].values) == ["resnet_spc", "bicubic", "ensemble"]
    assert list(saved["reference_label"].values) == ["bicubic"]
    assert saved["t2m_skill_rmse"].dims == ("model", "reference")
    # pr has other models, times and another grid
    assert saved["pr_correlation_map"].dims == ("model_pr", "lat_pr", "lon_pr")
    assert list(saved["model_pr_label"].values) == ["resnet_spc", "bicubic"]
    np.testing.assert_allclose(saved["lat_pr"].values, pr.maps["lat"].values)
    assert saved["t2m_power"].dims == ("model", "wavenumber")
    np.testing.assert_allclose(saved["wavelength"].values, t2m.spectrum["wavelength"].values)
    assert "pr_rank_histogram" not in saved and "pr_bias_season" not in saved
    assert saved.attrs["title"] == "Test <report>" and "a & b <c>" in saved.attrs["comment"]
    assert saved.attrs["Conventions"].startswith("CF")
    assert saved["lat"].attrs["units"] == "degrees_north" and saved["lon_pr"].attrs["standard_name"] == "longitude"
    assert "verified with dl4ds" in saved.attrs["history"]
    assert cf_problems(report.parent / "metrics.nc") == []


def test_csv_tables(report, scores):
    metrics = pd.read_csv(report.parent / "metrics.csv")
    assert list(metrics.columns) == ["variable", "model", *OVERALL]
    assert list(zip(metrics["variable"], metrics["model"])) == [
        ("t2m", "resnet_spc"),
        ("t2m", "bicubic"),
        ("t2m", "ensemble"),
        ("pr", "resnet_spc"),
        ("pr", "bicubic"),
    ]
    for variable, item in scores.items():
        rows = metrics[metrics["variable"] == variable].set_index("model")
        for name in OVERALL:
            np.testing.assert_allclose(rows[name].values, item.overall[name].values, rtol=1e-5, equal_nan=True)

    skill = pd.read_csv(report.parent / "skill.csv")
    assert list(skill.columns) == ["variable", "reference", "model", *OVERALL]
    # one reference by default: the best of the models after the first (bicubic has a lower RMSE than ensemble)
    assert list(zip(skill["variable"], skill["reference"], skill["model"])) == [
        ("t2m", "bicubic", "resnet_spc"),
        ("t2m", "bicubic", "ensemble"),
        ("pr", "bicubic", "resnet_spc"),
    ]
    expected = skill_scores(scores["t2m"], ["bicubic"])["rmse"].sel(reference="bicubic", model="resnet_spc")
    assert skill["rmse"].iloc[0] == pytest.approx(float(expected), rel=1e-5)
    assert skill["rmse"].iloc[0] > 0  # the first model is the best


def test_markdown_tables(report, scores):
    metrics = (report.parent / "metrics.md").read_text(encoding="utf-8")
    assert "## t2m (K)" in metrics and "## pr (mm/day)" in metrics
    assert "| model | bias (K) | mae (K) | rmse (K) | correlation | psnr (dB) |" in metrics
    assert "rmse (mm/day)" in metrics
    assert f"**{scores['t2m'].overall['rmse'].min().item():.4g}**" in metrics
    skill = (report.parent / "skill.md").read_text(encoding="utf-8")
    assert "## t2m relative to bicubic" in skill and "## pr relative to bicubic" in skill


def test_figures_skipped_without_ensemble_groups_or_examples(tmp_path):
    index = write_report({"t2m": make_scores(grouped=False)}, tmp_path / "plain", references=["bicubic"])
    names = figure_names(index.parent)
    assert names == {
        "t2m_spectrum.png",
        "t2m_quantiles.png",
        "t2m_per_sample.png",
        "t2m_map_bias.png",
        "t2m_map_correlation.png",
    }
    assert set(parse(index).figures) == {name.removesuffix(".png") for name in names}
    skill = pd.read_csv(index.parent / "skill.csv")
    assert set(skill["reference"]) == {"bicubic"}


def without_maps(item):
    return dataclasses.replace(item, maps=item.maps[[]])


def test_single_model_has_no_skill_tables(tmp_path):
    index = write_report({"t2m": without_maps(make_scores(models=["resnet_spc"], grouped=False))}, tmp_path)
    assert not any(name.startswith("t2m_map_") for name in figure_names(tmp_path))
    assert pd.read_csv(index.parent / "skill.csv").empty
    assert "No reference models." in (index.parent / "skill.md").read_text()
    with xr.open_dataset(index.parent / "metrics.nc") as saved:
        assert not any(name.startswith("t2m_skill_") for name in saved.data_vars)


def test_overwrites_an_earlier_report_and_keeps_other_files(tmp_path, report):
    directory = tmp_path / "moved"
    shutil.copytree(report.parent, directory)  # the report moves with its directory
    assert all((directory / "figures" / f"{name}.png").is_file() for name in parse(directory / "index.html").figures)
    (directory / "checkpoint.pt").write_bytes(b"user data")

    index = write_report({"t2m": without_maps(make_scores(models=("a", "b"), grouped=False))}, directory)

    assert {p.name for p in directory.iterdir()} == REPORT_FILES | {"checkpoint.pt"}
    assert (directory / "checkpoint.pt").read_bytes() == b"user data"
    assert set(parse(index).figures) == {name.removesuffix(".png") for name in figure_names(directory)}
    assert "t2m_rank_histogram.png" not in figure_names(directory), "figures of the old report are gone"
    assert list(pd.read_csv(directory / "metrics.csv")["model"]) == ["a", "b"]


def test_a_failure_leaves_the_earlier_report(tmp_path, report, monkeypatch):
    directory = tmp_path / "kept"
    shutil.copytree(report.parent, directory)
    before = {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "plot_metric_maps", broken)  # after metrics.nc and the CSV files
    with pytest.raises(RuntimeError, match="disk full"):
        write_report({"t2m": make_scores()}, directory)
    after = {p.relative_to(directory): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    assert after == before, "no file changed, no temporary left"
    assert {p.name for p in directory.iterdir()} == REPORT_FILES


def test_bad_input(tmp_path):
    good = make_scores(grouped=False)
    with pytest.raises(DataError, match="non-empty"):
        write_report({}, tmp_path / "a")
    with pytest.raises(DataError, match="Scores object"):
        write_report({"t2m": good.overall}, tmp_path / "a")
    no_model = Scores(**{**good.__dict__, "overall": good.overall.isel(model=0)})
    with pytest.raises(DataError, match="without 'model'"):
        write_report({"t2m": no_model}, tmp_path / "a")
    with pytest.raises(DataError, match=r"reference models \['persistence'\]"):
        write_report({"t2m": good}, tmp_path / "a", references=["persistence"])
    with pytest.raises(DataError, match="has no scores"):
        write_report({"t2m": good}, tmp_path / "a", examples={"pr": example_fields()})
    with pytest.raises(DataError, match="'truth' field"):
        write_report({"t2m": good}, tmp_path / "a", examples={"t2m": {"bicubic": example_fields()["bicubic"]}})
    assert list(tmp_path.iterdir()) == [], "nothing is written for bad input"
    twin = dataclasses.replace(good, variable="t2m_max")
    with pytest.raises(DataError, match=r"both give \['t2m_max_bias'"):  # t2m + max_bias, t2m_max + bias
        write_report({"t2m": good.select(["bicubic"]), "t2m_max": twin.select(["bicubic"])}, tmp_path / "a")
    assert list((tmp_path / "a").iterdir()) == [], "no temporary left"
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(OutputError, match="cannot create the report directory .*is a file, not a directory"):
        write_report({"t2m": good}, tmp_path / "file" / "report")


def test_score_figures_need_a_model_dimension(tmp_path):
    item = make_scores(ensemble="bcsd")
    with pytest.raises(DataError, match="without 'model'"):
        plots.plot_rank_histogram(item.rank_histogram.isel(model=2), tmp_path / "r.png")
    with pytest.raises(DataError, match="no model has a rank histogram"):
        plots.plot_rank_histogram(item.rank_histogram.isel(model=[0, 1]), tmp_path / "r.png")
    assert list(tmp_path.iterdir()) == []


def test_headline_table_skill_against_the_best_baseline_and_not_applicable_skill(tmp_path):
    """One headline table; skill against the best baseline only; n/a where that reference is near perfect."""
    item = make_scores(("resnet_spc", "bicubic", "bcsd"))
    overall = item.overall.copy()
    overall["bias"] = overall["bias"].copy(data=[0.2, 0.0003, 0.1])  # bicubic's bias is near perfect
    overall["rmse"] = overall["rmse"].copy(data=[0.8, 1.0, 1.2])  # bicubic is the best baseline
    item = dataclasses.replace(item, overall=overall)
    index = write_report({"t2m": without_maps(item)}, tmp_path / "r")
    page = index.read_text(encoding="utf-8")
    headline = page.split("<h3>Headline scores</h3>")[1].split("</table>")[0]
    assert re.findall(r"<th title=[^>]*>([^<]*)</th>", headline) == [
        "rmse (K)",
        "mae (K)",
        "bias (K)",
        "correlation",
        "ssim",
    ]
    assert page.count("<h3>Skill relative to") == 1 and "<h3>Skill relative to bicubic</h3>" in page
    skill = page.split("<h3>Skill relative to bicubic</h3>")[1].split("</table>")[0]
    rows = re.findall(r"<tr><th>(\w+)</th><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>", skill)  # bias, then mae
    assert [(model, bias) for model, bias, _ in rows] == [("resnet_spc", "n/a"), ("bcsd", "n/a")]
    assert all(mae != "n/a" for _, _, mae in rows)
    assert "-665" not in skill  # 1 - 0.2 / 0.0003 would be -665.7
    assert 'class="scroll"' in page and "overflow-x: auto" in page
    frame = pd.read_csv(index.parent / "skill.csv")
    assert frame["bias"].isna().all() and frame["rmse"].notna().all()
    assert "| resnet_spc | n/a |" in (index.parent / "skill.md").read_text()


def test_scores_show_as_a_table_in_notebooks(scores):
    item = scores["t2m"]
    frame = item.to_dataframe()
    assert list(frame.index) == item.models and list(frame.columns) == list(item.overall.data_vars)
    assert frame.loc["bicubic", "rmse"] == pytest.approx(float(item.overall["rmse"].sel(model="bicubic")))
    page = item._repr_html_()
    assert page.startswith("<div><strong>t2m (K): overall scores of 3 models</strong>")
    assert f"{float(item.overall['rmse'].sel(model='bicubic')):.4g}" in page and "<table" in page


def test_verification_and_tuning_results_show_their_headline_scores():
    from pathlib import Path

    from dl4ds.evaluation.pipeline import VerificationResult
    from dl4ds.tuning.tuner import TuningResult

    headline = {"resnet_spc": {"rmse": 0.41234, "mae": 0.3}, "bicubic": {"rmse": 0.9, "mae": 0.7}}
    verified = VerificationResult({}, headline, ("bicubic",), Path("out/report/index.html"))
    assert verified.to_dataframe().loc["bicubic", "mae"] == 0.7
    assert ">0.4123<" in verified._repr_html_() and "out/report/index.html" in verified._repr_html_()
    tuned = TuningResult(Path("tune"), 3, 0.5, None, {"tuned": {"rmse": 0.4}}, {"COMPLETE": 4, "PRUNED": 2})
    assert list(tuned.to_dataframe().index) == ["tuned"]
    assert "4 complete, 2 pruned" in tuned._repr_html_()
    assert TuningResult(Path("t"), None, None, None, None, {}).to_dataframe().empty


# --- the page in a real browser ----------------------------------------------------------------------------------

_MEASURE = """<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach((details) => { details.open = true; });
  const images = [...document.images];
  const boxes = [...document.querySelectorAll(".scroll")];
  const result = {
    images: images.length,
    broken: images.filter((image) => !image.complete || image.naturalWidth === 0).length,
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
    widest_box: Math.max(...boxes.map((box) => box.getBoundingClientRect().right)),
    scrolling: boxes.filter((box) => box.scrollWidth > box.clientWidth).length,
  };
  document.body.insertAdjacentHTML("beforeend", `<pre id="measured">${JSON.stringify(result)}</pre>`);
});
</script>"""


def measured_in_chromium(page, width=1400):
    """What headless Chromium measures of ``page`` (an HTML file) in a ``width`` px window, after load."""
    import json
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium): the page is not rendered")
    probe = page.with_name(".measured.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--window-size={width},900"]
    command += ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    probe.unlink()
    return json.loads(re.findall(r'<pre id="measured">(\{.*?)</pre>', dom)[-1])  # not the script's template


@pytest.mark.slow
def test_page_renders_in_a_browser_with_every_figure_and_tables_that_fit(report):
    """Every embedded figure decodes, the page is no wider than a 1400 px window, and in a 600 px window the
    tables scroll inside their boxes while the page itself does not."""
    result = measured_in_chromium(report)
    assert result["images"] == len(figure_names(report.parent)) and result["broken"] == 0, result
    assert result["page"] <= result["window"] == 1400, result
    assert result["widest_box"] <= 1400, result
    narrow = measured_in_chromium(report, width=600)
    assert narrow["page"] <= 600 and narrow["scrolling"] >= 1, narrow
