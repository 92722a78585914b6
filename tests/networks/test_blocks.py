"""Block options (normalisation, attention, dropout, separable convolutions), the localized layer, ConvLSTM, output activations."""

import pytest
import torch
from helpers import ALL_MODELS, inputs, small_model

from dl4ds import networks
from dl4ds.errors import ConfigError
from dl4ds.networks.backbones import UNet
from dl4ds.networks.blocks import BlockOptions, ChannelLayerNorm, FieldDropout, OutputActivation
from dl4ds.networks.localized import LocalizedLinear
from dl4ds.networks.recurrent import ConvLSTM


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


OPTION_SETS = [
    {"normalization": "batch"},
    {"normalization": "layer"},
    {"normalization": "group"},
    {"attention": True},
    {"separable": True},
    {"dropout": 0.2, "dropout_variant": "standard"},
    {"dropout": 0.2, "dropout_variant": "spatial"},
    {"dropout": 0.2, "dropout_variant": "gaussian"},
    {"dropout": 0.2, "mc_dropout": True},
    {"output_activation": "softplus"},
]


@pytest.mark.parametrize(
    "name", ["convnet_spc", "resnet_pin", "densenet_rc", "convnext_dc", "unet_spc", "recresnet_dc"]
)
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_every_block_option_trains_and_keeps_the_shape(name, options):
    model = small_model(name, scale=2, **options)
    x, static = inputs(name, 4, 2, 5, 6), torch.randn(4, 2, 10, 12)
    target = torch.randn(1, 1, 10, 12)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = (model(x, static) - target).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        out = model(x, static)
    assert out.shape[-2:] == (10, 12) and torch.isfinite(out).all()


def test_options_add_the_expected_layers():
    plain = small_model("resnet_spc")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    kinds = lambda m: {type(module).__name__ for module in m.modules()}  # noqa: E731
    assert "BatchNorm2d" in kinds(small_model("resnet_spc", normalization="batch"))
    assert "ChannelLayerNorm" in kinds(small_model("resnet_spc", normalization="layer"))
    assert "GroupNorm" in kinds(small_model("resnet_spc", normalization="group"))
    assert "ChannelAttention" in kinds(small_model("resnet_spc", attention=True))
    assert "FieldDropout" in kinds(small_model("resnet_spc", dropout=0.1))
    assert "FieldDropout" not in kinds(plain)
    separable = small_model("resnet_spc", separable=True, n_filters=32)
    assert "SeparableConv2d" in kinds(separable)
    assert count(separable) < count(small_model("resnet_spc", n_filters=32))


def test_channel_layer_norm_normalises_each_grid_point_over_channels():
    x = torch.randn(2, 5, 3, 4) * 3 + 7
    y = ChannelLayerNorm(5)(x)
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 3, 4), atol=1e-3, rtol=0)
    # independent of the other grid points: a patch is normalised as in the full field
    torch.testing.assert_close(ChannelLayerNorm(5)(x[..., 1:3, :2]), y[..., 1:3, :2])


@pytest.mark.parametrize("variant", ["standard", "spatial", "gaussian"])
def test_dropout_is_on_in_training_off_in_evaluation_unless_monte_carlo(variant):
    x = torch.ones(4, 8, 6, 6)
    layer = FieldDropout(0.5, variant)
    assert not torch.equal(layer(x), x)
    layer.eval()
    assert torch.equal(layer(x), x)
    mc = FieldDropout(0.5, variant, always_on=True).eval()
    assert not torch.equal(mc(x), mc(x))
    if variant == "spatial":  # whole channels are dropped
        out = layer.train()(x)
        per_channel = out.flatten(2)
        assert torch.all((per_channel == 0).all(-1) | (per_channel != 0).all(-1))
    torch.testing.assert_close(layer.train()(torch.ones(64, 64, 32, 32)).mean(), torch.tensor(1.0), atol=0.02, rtol=0)


def test_monte_carlo_dropout_network_samples_differ_at_inference():
    model = small_model("resnet_spc", dropout=0.2, mc_dropout=True).eval()
    deterministic = small_model("resnet_spc", dropout=0.2).eval()
    x, static = torch.randn(1, 2, 4, 6), torch.randn(1, 2, 16, 24)
    with torch.no_grad():
        assert not torch.equal(model(x, static), model(x, static))
        assert torch.equal(deterministic(x, static), deterministic(x, static))


def test_output_activation_bounds_outputs_at_the_floor():
    activation = OutputActivation(["relu", "none", "softplus"])
    activation.floor.copy_(torch.tensor([-1.0, 0.0, 2.0]))
    x = torch.tensor([-3.0, -3.0, -3.0]).reshape(1, 3, 1, 1)
    out = activation(x).flatten()
    assert out[0] == -1.0 and out[1] == -3.0
    assert 2.0 < out[2] < 2.01  # softplus(-5) = 0.0067
    network = small_model("unet_pin", out_channels=2, output_activation=["relu", "none"])
    with torch.no_grad():
        assert (network(torch.randn(3, 2, 4, 6) * 5, torch.randn(3, 2, 16, 24))[:, 0] >= 0).all()


def test_unet_pads_any_grid_to_its_depth_and_crops_back():
    unet = UNet(3, BlockOptions(), n_filters=4, depth=3)
    for shape in [(8, 8), (5, 7), (1, 1), (13, 29)]:
        assert unet(torch.randn(2, 3, *shape)).shape == (2, 4, *shape)


def test_localized_layer_is_indexed_by_absolute_grid_position():
    layer = LocalizedLinear(3, 2, (10, 12))
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    full = torch.randn(1, 3, 10, 12)
    expected = torch.einsum("oihw,bihw->bohw", layer.weight, full) + layer.bias
    torch.testing.assert_close(layer(full, None), expected)
    # hand check of one cell
    torch.testing.assert_close(
        expected[0, 1, 4, 5], (layer.weight[1, :, 4, 5] * full[0, :, 4, 5]).sum() + layer.bias[1, 4, 5]
    )
    patches = torch.cat([full[..., 2:6, 3:7], full[..., 6:10, 8:12]])
    offsets = torch.tensor([[2, 3], [6, 8]])
    out = layer(patches, offsets)
    torch.testing.assert_close(out[0], expected[0, :, 2:6, 3:7])
    torch.testing.assert_close(out[1], expected[0, :, 6:10, 8:12])
    with pytest.raises(ValueError, match=r"covers the training grid \(10, 12\) only.*reaches outside"):
        layer(patches, torch.tensor([[7, 0], [0, 0]]))
    with pytest.raises(ValueError, match="needs the offset of its first cell"):
        layer(patches, None)


def test_localized_network_needs_its_grid():
    with pytest.raises(ConfigError, match=r"localized=True needs localized_grid=\(H, W\)"):
        small_model("resnet_spc", localized=True)
    model = small_model("resnet_spc", localized=True, localized_grid=[16, 24])
    assert model.localized.weight.shape == (1, 4 + 4, 16, 24)
    torch.nn.init.normal_(model.localized.bias)
    x, static = torch.randn(1, 2, 4, 6), torch.randn(1, 2, 16, 24)
    a = model(x, static, torch.tensor([[0, 0]]))
    torch.testing.assert_close(a, model(x, static))  # full grid needs no offset
    window = model(x[..., :2, :3], static[..., :8, :12], torch.tensor([[8, 12]]))
    assert window.shape == (1, 1, 8, 12)


def test_conv_lstm_is_causal_forward_and_backward():
    layer = ConvLSTM(2, 3)
    x = torch.randn(1, 4, 2, 5, 5)
    out = layer(x)
    assert out.shape == (1, 4, 6, 5, 5)
    changed = x.clone()
    changed[:, 3] += 1
    changed_out = layer(changed)
    # forward states of frames 0-2 do not see frame 3; backward states do
    torch.testing.assert_close(changed_out[:, :3, :3], out[:, :3, :3])
    assert not torch.allclose(changed_out[:, :3, 3:], out[:, :3, 3:])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"normalization": "instance"}, r"normalization='instance'.*choose one of: 'none', 'batch', 'layer', 'group'"),
        ({"dropout_variant": "alpha", "dropout": 0.1}, r"dropout_variant='alpha'.*'standard', 'gaussian', 'spatial'"),
        ({"dropout": 1.5}, r"dropout=1.5.*must be in \[0, 1\)"),
        ({"dropout": "lots"}, r"dropout='lots'.*not a number"),
        ({"mc_dropout": True}, r"mc_dropout=True but dropout=0"),
        ({"interpolation": "cubic"}, r"interpolation='cubic'.*'bicubic', 'bilinear', 'nearest'"),
        ({"output_activation": "sigmoid"}, r"output_activation='sigmoid'.*'none', 'relu', 'softplus'"),
        ({"output_activation": ["relu"]}, r"2 outputs but output_activation lists 1"),
        ({"localized": True, "localized_grid": [16]}, r"localized_grid=\(H, W\)"),
        ({"lstm_filters": 0}, r"lstm_filters=0.*must be >= 1"),
        ({"depth": -1}, r"depth=-1.*must be >= 0"),
        ({"kernel_size": 4}, r"kernel_size=4.*must be odd"),
    ],
)
def test_invalid_options_are_refused_with_the_valid_choices(params, message):
    name = {"lstm_filters": "recunet_spc", "depth": "recunet_spc", "kernel_size": "convnext_pin"}.get(
        next(iter(params)), "resnet_spc"
    )
    with pytest.raises(ConfigError, match=message):
        networks.create(name, scale=4, in_channels=2, out_channels=2, **params)


def test_all_models_accept_every_option_at_once():
    options = {
        "normalization": "group",
        "attention": True,
        "dropout": 0.1,
        "dropout_variant": "spatial",
        "separable": True,
        "output_activation": "relu",
        "localized": True,
        "localized_grid": [8, 12],
    }
    for name in ALL_MODELS:
        model = small_model(name, scale=2, **options)
        out = model(inputs(name, 2, 2, 4, 6), torch.randn(2, 2, 8, 12))
        assert torch.isfinite(out).all() and (out >= 0).all()
