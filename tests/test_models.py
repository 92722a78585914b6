"""The network registry and resnet_spc: shapes, global skip, errors, training, state dict."""

import pytest
import torch

from dl4ds import models
from dl4ds.errors import ConfigError
from dl4ds.interpolation import upsample

SMALL = {"n_filters": 8, "n_blocks": 1, "static_filters": 4, "upsampled_filters": 4}


def small_model(scale: int = 4, in_channels: int = 2, out_channels: int = 1, static_channels: int = 2, **params):
    return models.create(
        "resnet_spc", scale=scale, in_channels=in_channels, out_channels=out_channels,
        static_channels=static_channels, **{**SMALL, **params},
    )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_lists_resnet_spc_with_its_parameters():
    assert "resnet_spc" in models.list_models()
    assert models.list_models() == sorted(models.list_models())
    assert models.model_parameters("resnet_spc") == {
        "n_filters": 48, "n_blocks": 3, "static_filters": 16, "upsampled_filters": 8, "global_skip": True,
    }


@pytest.mark.parametrize("scale", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("h, w", [(8, 12), (5, 7), (16, 16)])
@pytest.mark.parametrize("static_channels", [0, 2])
def test_output_shape(scale, h, w, static_channels):
    model = small_model(scale, in_channels=3, out_channels=2, static_channels=static_channels)
    x = torch.randn(2, 3, h, w)
    static = torch.randn(2, static_channels, h * scale, w * scale) if static_channels else None
    out = model(x, static)
    assert out.shape == (2, 2, h * scale, w * scale)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_global_skip_alone_is_bicubic_upsampling():
    model = small_model(scale=3, in_channels=3, out_channels=2)
    last = model.output_head.layers[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x, static = torch.randn(2, 3, 5, 7), torch.randn(2, 2, 15, 21)
    torch.testing.assert_close(model(x, static), upsample(x[:, :2], 3, "bicubic"), rtol=0, atol=0)


def test_without_global_skip_output_is_the_network_alone():
    model = small_model(global_skip=False, in_channels=1, out_channels=3)  # fewer inputs than outputs is fine
    last = model.output_head.layers[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, 0.5)
    out = model(torch.randn(2, 1, 4, 6), torch.randn(2, 2, 16, 24))
    assert torch.equal(out, torch.full((2, 3, 16, 24), 0.5))


def test_static_fields_change_the_output():
    model = small_model()
    x = torch.randn(1, 2, 4, 6)
    assert not torch.allclose(model(x, torch.randn(1, 2, 16, 24)), model(x, torch.randn(1, 2, 16, 24)))


def test_default_parameter_count():
    model = models.create("resnet_spc", scale=4, in_channels=1, out_channels=1, static_channels=2)
    count = sum(p.numel() for p in model.parameters())
    assert count == 209_441
    assert 180_000 <= count <= 230_000


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet_scp'.*did you mean 'resnet_spc'.*resnet_spc"):
        models.create("resnet_scp", scale=4, in_channels=1, out_channels=1)
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        models.model_parameters("nope")


def test_unknown_parameter_lists_accepted_ones_with_defaults():
    with pytest.raises(ConfigError, match=r"unknown parameter 'n_filter'.*did you mean 'n_filters'.*n_filters=48.*global_skip=True"):
        models.create("resnet_spc", scale=4, in_channels=1, out_channels=1, n_filter=32)


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
        models.create("resnet_spc", scale=4, in_channels=1, out_channels=1, **params)


@pytest.mark.parametrize("scale", [1, 0, -2, 2.5, 4.0, "4", True])
def test_bad_scale(scale):
    with pytest.raises(ConfigError, match="scale must be an integer >= 2"):
        models.create("resnet_spc", scale=scale, in_channels=1, out_channels=1)


def test_bad_channel_counts():
    with pytest.raises(ConfigError, match="in_channels=0"):
        models.create("resnet_spc", scale=2, in_channels=0, out_channels=1)
    with pytest.raises(ConfigError, match=r"global_skip=True.*in_channels=1.*global_skip=False"):
        models.create("resnet_spc", scale=2, in_channels=1, out_channels=2)


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


def test_adam_steps_lower_the_loss():
    model = small_model(scale=2)
    x, static, y = torch.randn(4, 2, 6, 6), torch.randn(4, 2, 12, 12), torch.randn(4, 1, 12, 12)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x, static), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0]


def test_state_dict_round_trip_gives_identical_output(tmp_path):
    model = small_model(scale=3).eval()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    restored = small_model(scale=3).eval()
    x, static = torch.randn(2, 2, 5, 7), torch.randn(2, 2, 15, 21)
    assert not torch.equal(model(x, static), restored(x, static))
    restored.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        assert torch.equal(model(x, static), restored(x, static))


def test_register_model_rejects_bad_architectures():
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("resnet_spc")(type("Other", (torch.nn.Module,), {}))

    class NoDefault(torch.nn.Module):
        def __init__(self, scale: int, in_channels: int, out_channels: int, static_channels: int = 0, *, width: int) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="'width' must be keyword-only with a default"):
        models.register_model("no_default")(NoDefault)
    assert "no_default" not in models.list_models()
