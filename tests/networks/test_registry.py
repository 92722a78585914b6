"""The network registry and every architecture: shapes, training, state dicts, errors."""

import pytest
import torch
from helpers import ALL_MODELS, REGISTERED, inputs, small_model

from dl4ds import networks
from dl4ds.errors import ConfigError
from dl4ds.utils.interpolation import upsample


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_holds_every_backbone_upsampling_and_temporal_combination():
    assert networks.list_models() == REGISTERED
    parameters = networks.model_parameters("resnet_spc")
    assert {
        k: parameters[k] for k in ("n_filters", "n_blocks", "static_filters", "upsampled_filters", "global_skip")
    } == {
        "n_filters": 48,
        "n_blocks": 3,
        "static_filters": 16,
        "upsampled_filters": 8,
        "global_skip": True,
    }
    assert {
        "normalization",
        "attention",
        "dropout",
        "dropout_variant",
        "mc_dropout",
        "separable",
        "localized",
        "output_activation",
        "interpolation",
    } <= set(parameters)
    assert "static_filters" not in networks.model_parameters("unet_pin")
    assert networks.model_parameters("recresnet_spc")["lstm_filters"] == 8
    assert "lstm_filters" not in parameters
    assert networks.model_parameters("densenet_spc")["growth_rate"] == 16


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("scale", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("h, w", [(6, 6), (5, 7)])
def test_output_shape(name, scale, h, w):
    model = small_model(name, scale, in_channels=3, out_channels=2)
    x = inputs(name, 2, 3, h, w)
    out = model(x, torch.randn(2, 2, h * scale, w * scale))
    expected = (2, 2, h * scale, w * scale)
    assert out.shape == ((2, 3, *expected[1:]) if name.startswith("rec") else expected)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["resnet_spc", "unet_pin", "convnext_dc", "recdensenet_rc"])
def test_grids_larger_than_training_patches(name):
    model = small_model(name, scale=4, static_channels=0).eval()
    with torch.no_grad():
        assert model(inputs(name, 1, 2, 4, 4)).shape[-2:] == (16, 16)
        assert model(inputs(name, 1, 2, 23, 37)).shape[-2:] == (92, 148)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_adam_steps_lower_the_loss(name):
    scale = 2
    x, static = inputs(name, 4, 2, 6, 6), torch.randn(4, 2, 12, 12)
    coarse_target = x[:, :, :1] if name.startswith("rec") else x[:, :1]
    y = upsample(coarse_target.flatten(0, -4), scale).reshape(*coarse_target.shape[:-2], 12, 12) + 0.5 * torch.randn(
        1, 1, 12, 12
    )
    model = small_model(name, scale, global_skip=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, static), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_state_dict_round_trip_gives_identical_output(name, tmp_path):
    model = small_model(name, scale=3).eval()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    restored = small_model(name, scale=3).eval()
    x, static = inputs(name, 2, 2, 5, 7), torch.randn(2, 2, 15, 21)
    with torch.no_grad():
        assert not torch.equal(model(x, static), restored(x, static))
        restored.load_state_dict(torch.load(path, weights_only=True))
        assert torch.equal(model(x, static), restored(x, static))


@pytest.mark.parametrize("name", ["resnet_spc", "unet_pin", "densenet_dc", "convnext_rc"])
def test_global_skip_alone_is_interpolation_of_the_coarse_targets(name):
    model = small_model(name, scale=3, in_channels=3, out_channels=2)
    last = model.output_head.layers[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x, static = torch.randn(2, 3, 5, 7), torch.randn(2, 2, 15, 21)
    torch.testing.assert_close(model(x, static), upsample(x[:, :2], 3, "bicubic"), rtol=0, atol=0)
    bilinear = small_model(name, scale=3, in_channels=3, out_channels=2, interpolation="bilinear")
    torch.nn.init.zeros_(bilinear.output_head.layers[-1].weight)
    torch.nn.init.zeros_(bilinear.output_head.layers[-1].bias)
    torch.testing.assert_close(bilinear(x, static), upsample(x[:, :2], 3, "bilinear"), rtol=0, atol=0)


def test_pre_upsampling_backbone_runs_on_the_interpolated_input():
    model = small_model("convnet_pin", scale=4, in_channels=1, static_channels=0, global_skip=False)
    x = torch.randn(1, 1, 5, 6)
    features = model.backbone(upsample(x, 4, "bicubic"))
    torch.testing.assert_close(model(x), model.output_head(features))


def test_without_global_skip_output_is_the_network_alone():
    model = small_model(global_skip=False, in_channels=1, out_channels=3)  # fewer inputs than outputs is fine
    last = model.output_head.layers[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, 0.5)
    out = model(torch.randn(2, 1, 4, 6), torch.randn(2, 2, 16, 24))
    assert torch.equal(out, torch.full((2, 3, 16, 24), 0.5))


@pytest.mark.parametrize("name", ["resnet_spc", "unet_pin", "recconvnet_dc"])
def test_static_fields_change_the_output(name):
    model = small_model(name)
    x = inputs(name, 1, 2, 4, 6)
    assert not torch.allclose(model(x, torch.randn(1, 2, 16, 24)), model(x, torch.randn(1, 2, 16, 24)))


def test_default_parameter_count():
    model = networks.create("resnet_spc", scale=4, in_channels=1, out_channels=1, static_channels=2)
    assert sum(p.numel() for p in model.parameters()) == 209_441


def test_spatio_temporal_frames_see_their_neighbours():
    """Changing the last frame of a window changes the prediction of the first (bidirectional ConvLSTM)."""
    model = small_model("recresnet_spc").eval()
    x, static = torch.randn(1, 3, 2, 4, 6), torch.randn(1, 2, 16, 24)
    changed = x.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(x, static)[:, 0], model(changed, static)[:, 0])
        with pytest.raises(ValueError, match=r"window of coarse inputs of shape \(batch, time, 2, h, w\)"):
            model(torch.randn(1, 2, 4, 6), static)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet_scp'.*did you mean 'resnet_spc'.*resnet_spc"):
        networks.create("resnet_scp", scale=4, in_channels=1, out_channels=1)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        networks.model_parameters("nope")


def test_unknown_combination_lists_the_valid_models():
    with pytest.raises(
        ConfigError, match=r"unknown model 'unet_xyz'.*choose one of: convnet_dc, .*recunet_spc.*unet_spc"
    ):
        networks.create("unet_xyz", scale=4, in_channels=1, out_channels=1)
    with pytest.raises(ConfigError, match=r"unknown model 'resnet_pixelshuffle'"):
        networks.create("resnet_pixelshuffle", scale=4, in_channels=1, out_channels=1)


def test_parameter_of_another_upsampling_is_refused():
    with pytest.raises(ConfigError, match=r"unknown parameter 'upsampled_filters' for model 'resnet_pin'"):
        networks.create("resnet_pin", scale=4, in_channels=1, out_channels=1, upsampled_filters=8)
    with pytest.raises(ConfigError, match=r"unknown parameter 'lstm_filters' for model 'resnet_spc'"):
        networks.create("resnet_spc", scale=4, in_channels=1, out_channels=1, lstm_filters=8)


def test_unknown_parameter_lists_accepted_ones_with_defaults():
    with pytest.raises(
        ConfigError, match=r"unknown parameter 'n_filter'.*did you mean 'n_filters'.*n_filters=48.*global_skip=True"
    ):
        networks.create("resnet_spc", scale=4, in_channels=1, out_channels=1, n_filter=32)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_filters": "many"}, r"n_filters='many'.*not an integer"),
        ({"n_blocks": 2.5}, r"n_blocks=2.5.*not an integer"),
        ({"global_skip": "yes"}, r"global_skip='yes'.*not a boolean"),
        ({"n_filters": 0}, r"n_filters=0.*must be >= 1"),
        ({"n_blocks": -1}, r"n_blocks=-1.*must be >= 0"),
    ],
)
def test_invalid_parameter_values(params, message):
    with pytest.raises(ConfigError, match=message):
        networks.create("resnet_spc", scale=4, in_channels=1, out_channels=1, **params)


@pytest.mark.parametrize("scale", [1, 0, -2, 2.5, 4.0, "4", True])
def test_bad_scale(scale):
    with pytest.raises(ConfigError, match="scale must be an integer >= 2"):
        networks.create("resnet_spc", scale=scale, in_channels=1, out_channels=1)


def test_bad_channel_counts():
    with pytest.raises(ConfigError, match="in_channels=0"):
        networks.create("resnet_spc", scale=2, in_channels=0, out_channels=1)
    with pytest.raises(ConfigError, match=r"global_skip=True.*in_channels=1.*global_skip=False"):
        networks.create("resnet_spc", scale=2, in_channels=1, out_channels=2)


def test_bad_static_shapes_raise_value_error_naming_expected_shape():
    model = small_model(scale=4, static_channels=2)
    x = torch.randn(2, 2, 4, 6)
    expected = r"\(2, 2, 16, 24\)"
    with pytest.raises(ValueError, match=f"needs static fields of shape {expected}.*got None"):
        model(x)
    with pytest.raises(ValueError, match=f"expected static fields of shape {expected}.*got \\(2, 3, 16, 24\\)"):
        model(x, torch.randn(2, 3, 16, 24))
    with pytest.raises(ValueError, match=f"expected static fields of shape {expected}.*got \\(2, 2, 8, 12\\)"):
        model(x, torch.randn(2, 2, 8, 12))
    with pytest.raises(ValueError, match=r"coarse inputs of shape \(batch, 2, h, w\)"):
        model(torch.randn(2, 1, 4, 6), torch.randn(2, 2, 16, 24))
    with pytest.raises(ValueError, match="static_channels=0.*pass static=None"):
        small_model(static_channels=0)(x, torch.randn(2, 2, 16, 24))


def test_register_model_rejects_bad_architectures():
    with pytest.raises(ValueError, match="already registered"):
        networks.register_model("resnet_spc")(type("Other", (torch.nn.Module,), {}))

    class NoDefault(torch.nn.Module):
        def __init__(
            self, scale: int, in_channels: int, out_channels: int, static_channels: int = 0, *, width: int
        ) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="'width' must be keyword-only with a default"):
        networks.register_model("no_default")(NoDefault)
    assert "no_default" not in networks.list_models()
