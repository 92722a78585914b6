"""ONNX export: ONNX Runtime reproduces the torch model, metadata travels with the graph, bad exports write nothing."""

import dataclasses
import json
import re
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import small_params

from dl4ds import __version__
from dl4ds.cli import main
from dl4ds.data import Normalizer, PerfectProg
from dl4ds.errors import ConfigError
from dl4ds.inference.export import export_onnx
from dl4ds.model import DownscalingModel, ModelMetadata
from dl4ds.model.checkpoint import save_checkpoint

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(trained_model, ort, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    return export_onnx(trained_model, path), ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch(model, *inputs):
    with torch.no_grad():
        return model(*inputs).numpy()


def _randomised(model: DownscalingModel) -> DownscalingModel:
    """``model`` with noise added to every weight, so that localized layers (zero at first) matter."""
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.network.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model.eval()


def _files(directory):
    return sorted(path.name for path in directory.iterdir())


def test_onnx_runtime_reproduces_the_trained_model_on_new_data_and_windows(trained_model, week_pairs, exported):
    result, session = exported
    assert result.input_names == ("coarse", "static") and result.output_name == "fine"
    assert [node.name for node in session.get_inputs()] == ["coarse", "static"]
    assert result.max_abs_diff <= TOLERANCE
    std = trained_model.metadata.normalizer.target.std[0]
    assert result.max_abs_diff_physical["t2m"] == pytest.approx(result.max_abs_diff * std, rel=1e-6)
    assert (3, 1, 8, 12) in result.checked_shapes and len(result.checked_shapes) >= 2

    # days the model never saw, normalised as dl4ds does, in one batch of another size than the check's
    normalizer = trained_model.metadata.normalizer
    coarse = normalizer.normalize_inputs(week_pairs.select_time("2019-03-06", "2019-03-07").inputs.values)
    static = trained_model.static.expand(len(coarse), -1, -1, -1).numpy()
    (fine,) = session.run(None, {"coarse": coarse, "static": static})
    assert fine.shape == (16, 1, 32, 48)
    np.testing.assert_allclose(fine, _torch(trained_model, torch.from_numpy(coarse)), atol=TOLERANCE, rtol=0)

    # a window of the domain with the static fields sliced to match
    window = coarse[:5, :, 2:6, 3:9]
    static_window = static[:5, :, 8:24, 12:36]
    (fine_window,) = session.run(None, {"coarse": window, "static": np.ascontiguousarray(static_window)})
    assert fine_window.shape == (5, 1, 16, 24)
    expected = _torch(trained_model, torch.from_numpy(window), torch.from_numpy(np.ascontiguousarray(static_window)))
    np.testing.assert_allclose(fine_window, expected, atol=TOLERANCE, rtol=0)


def test_metadata_in_the_file_rebuilds_the_models_metadata(trained_model, exported):
    import onnx

    result, _ = exported
    proto = onnx.load(str(result.path))
    props = {prop.key: prop.value for prop in proto.metadata_props}
    assert props["dl4ds_version"] == __version__
    metadata = ModelMetadata.from_dict(json.loads(props["dl4ds_metadata"]))
    assert metadata.to_dict() == trained_model.metadata.to_dict()
    assert {opset.domain: opset.version for opset in proto.opset_import}[""] == result.opset == 17
    # batch and grid sizes are free in the graph; channels are fixed
    dims = [dim.dim_param or dim.dim_value for dim in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "coarse_height", "coarse_width"]


def test_a_model_in_training_mode_is_exported_in_evaluation_mode_and_left_as_it_was(week_pairs, ort, tmp_path):
    pairs = week_pairs.select_time("2019-03-01", "2019-03-03")
    params = {**small_params("resnet_rc"), "dropout": 0.2, "normalization": "batch"}
    model = DownscalingModel.build("resnet_rc", pairs, Normalizer.fit(pairs), params=params)
    assert model.training
    before = {key: value.clone() for key, value in model.state_dict().items()}
    result = export_onnx(model, tmp_path / "m.onnx", opset=11)
    assert result.opset == 11 and result.max_abs_diff <= TOLERANCE  # no dropout, batch norm with running statistics
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.fixture(scope="module")
def pairs_without_static(era5_week):
    return PerfectProg(scale=4).pair(era5_week)


@pytest.mark.parametrize(
    "architecture, params, time_window, with_static",
    [
        ("recresnet_spc", {"localized": True}, 3, True),  # spatio-temporal windows, localized layer, static fields
        ("unet_spc", {}, None, True),  # pads odd grids
        ("convnet_pin", {"localized": True}, None, False),  # localized layer without static fields
    ],
)
def test_temporal_localized_and_unet_models_export_exactly(
    architecture,
    params,
    time_window,
    with_static,
    week_pairs,
    pairs_without_static,
    ort,
    tmp_path,
):
    pairs = (week_pairs if with_static else pairs_without_static).select_time("2019-03-01", "2019-03-05")
    model = DownscalingModel.build(
        architecture,
        pairs,
        Normalizer.fit(pairs),
        params={**small_params(architecture), **params},
        time_window=time_window,
    )
    model = _randomised(model)
    result = export_onnx(model, tmp_path / "m.onnx")
    localized = params.get("localized", False)
    assert result.input_names == ("coarse",) + (("static",) if with_static else ()) + (("offset",) if localized else ())
    assert result.max_abs_diff <= TOLERANCE

    # an odd window at an odd offset, with a batch size the export never used
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    frames = (time_window,) if time_window else ()
    coarse = torch.randn(4, *frames, 1, 5, 7, generator=generator)
    static = model.static[:, 4:24, 12:40].expand(4, -1, -1, -1).contiguous() if with_static else None
    offset = torch.tensor([[4, 12]] * 4)
    feed = {"coarse": coarse.numpy()}
    if with_static:
        feed["static"] = static.numpy()
    if localized:
        feed["offset"] = offset.numpy()
    (fine,) = session.run(None, feed)
    expected = _torch(model, coarse, static, offset if localized else None)
    assert fine.shape == expected.shape == (4, *frames, 1, 20, 28)
    np.testing.assert_allclose(fine, expected, atol=TOLERANCE, rtol=0)
    if localized:  # the graph uses the offsets: another window of the grid gives another answer
        (elsewhere,) = session.run(None, feed | {"offset": np.array([[0, 0]] * 4)})
        assert np.abs(elsewhere - fine).max() > 1e-3


@pytest.mark.parametrize("params", [{"noise_channels": 2}, {"dropout": 0.1, "mc_dropout": True}])
def test_stochastic_models_are_refused_and_leave_no_file(params, week_pairs, ort, tmp_path):
    pairs = week_pairs.select_time("2019-03-01", "2019-03-03")
    params = {**small_params("resnet_spc"), **params}
    model = DownscalingModel.build("resnet_spc", pairs, Normalizer.fit(pairs), params=params)
    why = r"stochastic.*ONNX Runtime draws its own random numbers.*noise_channels=0, mc_dropout=False"
    with pytest.raises(ConfigError, match=why):
        export_onnx(model, tmp_path / "m.onnx")
    assert _files(tmp_path) == []


def test_random_nodes_in_the_graph_are_refused_even_when_the_model_does_not_say_it_is_stochastic(
    week_pairs,
    ort,
    tmp_path,
    monkeypatch,
):
    pairs = week_pairs.select_time("2019-03-01", "2019-03-03")
    params = {**small_params("resnet_spc"), "noise_channels": 1}
    model = DownscalingModel.build("resnet_spc", pairs, Normalizer.fit(pairs), params=params)
    declared = DownscalingModel.capabilities.fget
    monkeypatch.setattr(
        DownscalingModel, "capabilities", property(lambda self: dataclasses.replace(declared(self), stochastic=False))
    )
    with pytest.raises(ConfigError, match=r"draws random numbers \(RandomNormalLike\), so it is not exported"):
        export_onnx(model, tmp_path / "m.onnx")
    assert _files(tmp_path) == []


def test_exporter_failures_are_reported_and_write_nothing(trained_model, ort, tmp_path, monkeypatch):
    def unsupported(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::magic' is not supported\n(details)")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    reason = r"'resnet_spc' cannot be exported to ONNX opset 17 \(RuntimeError: .*aten::magic.* not supported\)"
    with pytest.raises(ConfigError, match=reason):
        export_onnx(trained_model, tmp_path / "m.onnx")
    assert _files(tmp_path) == []


def test_a_failing_check_writes_nothing_and_keeps_the_old_file(trained_model, ort, tmp_path, monkeypatch):
    destination = tmp_path / "m.onnx"
    destination.write_bytes(b"previous export")
    run = ort.InferenceSession.run

    def off_by_a_little(self, *args, **kwargs):
        return [output + 1e-3 for output in run(self, *args, **kwargs)]

    monkeypatch.setattr(ort.InferenceSession, "run", off_by_a_little)
    mismatch = r"does not reproduce the torch model: ONNX Runtime differs by up to 0\.001 .*t2m .* K\)"
    with pytest.raises(ConfigError, match=mismatch):
        export_onnx(trained_model, destination)
    assert destination.read_bytes() == b"previous export"
    assert _files(tmp_path) == ["m.onnx"]
    # without the check the same (here: perturbed) runtime is not consulted
    result = export_onnx(trained_model, destination, check=False)
    assert result.max_abs_diff is None and result.checked_shapes == ()
    assert destination.read_bytes()[:4] != b"prev"


def test_invalid_options_are_refused_before_writing(trained_model, ort, tmp_path):
    with pytest.raises(ConfigError, match="opset 9 is not supported; choose an opset from 11 to 20"):
        export_onnx(trained_model, tmp_path / "m.onnx", opset=9)
    with pytest.raises(ConfigError, match="tolerance=-1 must be >= 0"):
        export_onnx(trained_model, tmp_path / "m.onnx", tolerance=-1)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("missing, check", [("onnxruntime", True), ("onnx", False)])
def test_missing_packages_name_the_extra(missing, check, trained_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    hint = rf'needs the optional packages onnx and onnxruntime, but {missing} is not installed.*pip install "dl4ds\[onnx\]"'
    with pytest.raises(ConfigError, match=hint):
        export_onnx(trained_model, tmp_path / "m.onnx", check=check)
    assert _files(tmp_path) == []


def test_cli_exports_a_checkpoint_and_prints_the_difference(trained_model, ort, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "best.pt", trained_model)
    output = tmp_path / "onnx" / "model.onnx"
    result = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert f"wrote {output} (inputs: coarse, static; output: fine; opset 17)" in result.output
    match = re.search(
        r"max \|ONNX Runtime - torch\| on 3 input shapes: (\S+) normalised \(t2m (\S+) K\)", result.output
    )
    assert match, result.output
    assert 0 <= float(match[1]) <= TOLERANCE and 0 <= float(match[2]) <= TOLERANCE * 10
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    coarse = np.zeros((2, 1, 8, 12), np.float32)
    static = trained_model.static.expand(2, -1, -1, -1).numpy()
    (fine,) = session.run(None, {"coarse": coarse, "static": static})
    np.testing.assert_allclose(fine, _torch(trained_model, torch.from_numpy(coarse)), atol=TOLERANCE)

    unchecked = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(output), "--no-check", "--opset", "20"])
    assert unchecked.exit_code == 0, unchecked.output
    assert "opset 20" in unchecked.output and "not compared with ONNX Runtime (--no-check)" in unchecked.output

    refused = CliRunner().invoke(main, ["export", str(checkpoint), "-o", str(tmp_path / "other.onnx"), "--opset", "21"])
    assert refused.exit_code == 2
    assert "error: ONNX opset 21 is not supported" in refused.output
    assert not (tmp_path / "other.onnx").exists()
