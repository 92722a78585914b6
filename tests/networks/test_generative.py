"""Generative building blocks: noise injection in the networks, stochastic models, the conditional discriminator."""

import itertools
import math

import pytest
import torch
from helpers import ALL_MODELS, inputs, small_model, small_params

from dl4ds import networks
from dl4ds.data.normalization import Normalizer
from dl4ds.errors import ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.networks import ConditionalDiscriminator
from dl4ds.networks.blocks import NoiseInjection

NOISY = ["resnet_spc", "convnet_pin", "unet_dc", "densenet_rc", "recresnet_spc"]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _spatial(network: torch.nn.Module) -> torch.nn.Module:
    """The spatial network of ``network`` (itself for spatial networks)."""
    return getattr(network, "spatial", network)


# --- noise injection ---------------------------------------------------------------------------


def test_noise_injection_appends_fresh_standard_normal_maps():
    layer = NoiseInjection(3)
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (2, 7, 5, 6) and out.dtype == torch.float64
    assert torch.equal(out[:, :4], x)
    assert not torch.equal(out[:, 4:], layer(x)[:, 4:])
    torch.manual_seed(5)
    first = layer(x)
    torch.manual_seed(5)
    assert torch.equal(first, layer(x))
    big = NoiseInjection(8)(torch.zeros(4, 0, 32, 32))
    assert abs(big.mean().item()) < 0.05 and abs(big.std().item() - 1.0) < 0.05
    assert repr(layer) == "NoiseInjection(channels=3)"
    empty = NoiseInjection(0)
    state = torch.get_rng_state()
    assert empty(x) is x and torch.equal(torch.get_rng_state(), state)


def test_every_network_takes_noise_channels():
    for name in ALL_MODELS:
        assert networks.model_parameters(name)["noise_channels"] == 0
    with pytest.raises(ConfigError, match=r"noise_channels=-1 of model 'resnet_spc' must be >= 0"):
        small_model("resnet_spc", noise_channels=-1)
    with pytest.raises(ConfigError, match=r"noise_channels=-2 of model 'recunet_pin' must be >= 0"):
        small_model("recunet_pin", noise_channels=-2)
    with pytest.raises(ConfigError, match=r"noise_channels=1.5.*not an integer"):
        small_model("resnet_spc", noise_channels=1.5)


@pytest.mark.parametrize("name", NOISY)
def test_noisy_networks_are_repeatable_stochastic_generators(name):
    model = small_model(name, scale=2, noise_channels=3).eval()
    x, static = inputs(name, 2, 2, 4, 6), torch.randn(2, 2, 8, 12)
    with torch.no_grad():
        first, second = model(x, static), model(x, static)
        torch.manual_seed(7)
        seeded = model(x, static)
        torch.manual_seed(7)
        assert torch.equal(seeded, model(x, static))
    expected = (2, 3, 1, 8, 12) if name.startswith("rec") else (2, 1, 8, 12)
    assert first.shape == expected and torch.isfinite(first).all()
    assert not torch.allclose(first, second)

    model.train()
    model(x, static).pow(2).mean().backward()
    spatial = _spatial(model)
    for layer in (next(spatial.backbone.parameters()), spatial.output_head.layers[0].weight):
        assert layer.grad is not None and torch.isfinite(layer.grad).all() and layer.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NOISY)
def test_noise_enters_the_backbone_input_and_the_output_head(name):
    noise, scale, h, w = 3, 2, 4, 6
    model = small_model(name, scale=scale, noise_channels=noise, static_channels=2)
    spatial = _spatial(model)
    seen: dict[str, torch.Size] = {}

    def record(key: str):
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen[key] = args[0].shape

        return hook

    spatial.backbone.register_forward_pre_hook(record("backbone"))
    spatial.output_head.register_forward_pre_hook(record("head"))
    batch = 2
    frames = batch * 3 if name.startswith("rec") else batch
    model(inputs(name, batch, 2, h, w), torch.randn(batch, 2, h * scale, w * scale))
    channels = spatial.in_channels  # 2 inputs, plus the ConvLSTM state for rec* networks
    if name.endswith("_pin"):
        assert seen["backbone"] == (frames, channels + 2 + noise, h * scale, w * scale)  # interpolated + static + noise
    else:
        assert seen["backbone"] == (frames, channels + noise, h, w)  # coarse grid
    without_noise = small_model(name, scale=scale, static_channels=2)
    fused = _spatial(without_noise).output_head.layers[0].in_channels
    assert seen["head"] == (frames, fused + noise, h * scale, w * scale)


def test_recurrent_networks_inject_noise_per_frame_and_not_into_the_convlstm():
    model = small_model("recresnet_spc", noise_channels=2).eval()
    assert not any(isinstance(module, NoiseInjection) for module in model.temporal_encoder.modules())
    x = torch.randn(1, 1, 2, 4, 6).expand(1, 3, 2, 4, 6)  # three identical frames
    seen = []
    model.temporal_encoder.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model.spatial.feature_noise.register_forward_hook(lambda _, args, out: seen.append(out[:, -2:]))
    with torch.no_grad():
        model(x, torch.randn(1, 2, 16, 24))
    assert torch.equal(seen[0], x)  # the ConvLSTM sees the coarse inputs only
    frames = seen[1]  # (T, 2, H, W): the fine-grid noise of each frame
    assert frames.shape == (3, 2, 16, 24)
    assert not torch.allclose(frames[0], frames[1]) and not torch.allclose(frames[1], frames[2])


def test_localized_layer_sees_the_noise_features():
    model = small_model("resnet_spc", noise_channels=3, localized=True, localized_grid=[8, 12])
    # upsampled_filters 4 + static_filters 4 + 3 noise maps
    assert model.localized.weight.shape[:2] == (1, 11)
    assert model.output_head.layers[0].in_channels == 11 and model.output_head.layers[0].out_channels == 8
    out = model(torch.randn(2, 2, 2, 3), torch.randn(2, 2, 8, 12))
    assert out.shape == (2, 1, 8, 12)


@pytest.mark.parametrize("name", NOISY)
def test_without_noise_channels_the_networks_are_unchanged_and_deterministic(name):
    default = small_model(name, scale=2).eval()
    zero = small_model(name, scale=2, noise_channels=0).eval()
    noisy = small_model(name, scale=2, noise_channels=2)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(zero) == shapes(default)
    assert set(shapes(noisy)) == set(shapes(default))  # only input widths change
    zero.load_state_dict(default.state_dict())
    x, static = inputs(name, 2, 2, 4, 6), torch.randn(2, 2, 8, 12)
    state = torch.get_rng_state()
    with torch.no_grad():
        out = default(x, static)
        assert torch.equal(out, zero(x, static)) and torch.equal(out, default(x, static))
    assert torch.equal(torch.get_rng_state(), state)  # no noise drawn


def test_default_parameter_count_without_noise():
    model = networks.create("resnet_spc", scale=4, in_channels=1, out_channels=1, static_channels=2, noise_channels=0)
    assert sum(p.numel() for p in model.parameters()) == 209_441


# --- stochastic models -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def normalizer(week_pairs):
    return Normalizer.fit(week_pairs)


@pytest.mark.parametrize(
    "name, params, stochastic",
    [
        ("resnet_spc", {}, False),
        ("resnet_spc", {"dropout": 0.1}, False),
        ("resnet_spc", {"noise_channels": 2}, True),
        ("resnet_spc", {"dropout": 0.1, "mc_dropout": True}, True),
        ("recconvnet_pin", {"noise_channels": 1}, True),
    ],
)
def test_model_is_stochastic_with_noise_or_mc_dropout(week_pairs, normalizer, name, params, stochastic):
    time_window = 2 if name.startswith("rec") else None
    model = DownscalingModel.build(
        name, week_pairs, normalizer, params={**small_params(name), **params}, time_window=time_window
    ).eval()
    assert model.capabilities.stochastic is stochastic
    x = torch.randn(1, 2, 1, 8, 12) if time_window else torch.randn(1, 1, 8, 12)
    with torch.no_grad():
        assert torch.equal(model(x), model(x)) is not stochastic


# --- conditional discriminator -----------------------------------------------------------------


def _discriminator_inputs(
    batch: int,
    height: int,
    width: int,
    *,
    scale: int = 4,
    variables: int = 2,
    channels: int = 3,
    static_channels: int = 2,
    steps: int | None = None,
):
    window = (batch,) if steps is None else (batch, steps)
    fields = torch.randn(*window, variables, height, width)
    coarse = torch.randn(*window, channels, height // scale, width // scale)
    static = torch.randn(batch, static_channels, height, width) if static_channels else None
    return fields, coarse, static


@pytest.mark.parametrize("height, width", [(8, 8), (16, 24), (32, 32)])
@pytest.mark.parametrize("depth", [0, 2, 3])
@pytest.mark.parametrize("static_channels", [0, 2])
def test_discriminator_scores_patches(height, width, depth, static_channels):
    discriminator = ConditionalDiscriminator(2, 3, static_channels, 4, n_filters=8, depth=depth)
    logits = discriminator(*_discriminator_inputs(2, height, width, static_channels=static_channels))
    assert logits.shape == (2, 1, math.ceil(height / 2**depth), math.ceil(width / 2**depth))
    assert torch.isfinite(logits).all()


def test_discriminator_scores_every_frame_of_a_window():
    discriminator = ConditionalDiscriminator(2, 3, 2, 4, n_filters=8, depth=2).eval()
    fields, coarse, static = _discriminator_inputs(2, 16, 24, steps=3)
    logits = discriminator(fields, coarse, static)
    assert logits.shape == (2, 3, 1, 4, 6)
    frame = discriminator(fields[1, 2:], coarse[1, 2:], static[1:])
    torch.testing.assert_close(logits[1, 2:], frame)


def test_discriminator_receptive_field():
    """Each logit sees (2**(depth + 2) + 1) fine cells in each direction, as documented."""
    for depth in (0, 1, 2, 3):
        discriminator = ConditionalDiscriminator(1, 1, 0, 4, n_filters=4, depth=depth, spectral_norm=False)
        fields = torch.randn(1, 1, 128, 128, requires_grad=True)
        logits = discriminator(fields, torch.randn(1, 1, 32, 32))
        centre = logits.shape[-1] // 2
        logits[0, 0, centre, centre].backward()
        rows = fields.grad[0, 0].abs().sum(1).nonzero()
        assert rows.max() - rows.min() + 1 == 2 ** (depth + 2) + 1


def test_discriminator_spectral_norm_is_optional_and_saved():
    parametrized = torch.nn.utils.parametrize.is_parametrized
    with_norm = ConditionalDiscriminator(1, 1, 2, 4)
    convs = [m for m in with_norm.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(parametrized(conv, "weight") for conv in convs)
    assert sum(key.endswith("_u") for key in with_norm.state_dict()) == 5
    without = ConditionalDiscriminator(1, 1, 2, 4, spectral_norm=False)
    plain_convs = [m for m in without.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(plain_convs) == 5 and not any(parametrized(conv, "weight") for conv in plain_convs)

    inputs_ = _discriminator_inputs(2, 16, 16, variables=1, channels=1)
    with_norm.train()
    with_norm(*inputs_)  # a power iteration updates the singular vectors
    restored = ConditionalDiscriminator(1, 1, 2, 4)
    restored.load_state_dict(with_norm.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(*inputs_), with_norm.eval()(*inputs_))


def test_discriminator_size():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # V + C + S = 4 inputs -> 32 -> 64 -> 128 -> 256 -> 1 maps, 3x3 kernels with biases
    widths = [4, 32, 64, 128, 256, 1]
    expected = sum(9 * a * b + b for a, b in itertools.pairwise(widths))
    assert count(ConditionalDiscriminator(1, 1, 2, 4)) == expected == 391_009
    deep = ConditionalDiscriminator(1, 1, 0, 4, n_filters=8, depth=5, spectral_norm=False)
    assert [m.out_channels for m in deep.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 16, 32, 64, 64, 64, 1]
    assert count(ConditionalDiscriminator(1, 1, 0, 4, n_filters=8, depth=0)) < 1_000


def test_discriminator_gradients_are_finite():
    discriminator = ConditionalDiscriminator(2, 3, 2, 4, n_filters=8)
    fields, coarse, static = _discriminator_inputs(2, 16, 24)
    fields.requires_grad_(True)
    discriminator(fields, coarse, static).mean().backward()
    for parameter in discriminator.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()
    first = discriminator.layers[0].parametrizations.weight.original.grad
    assert first.abs().sum() > 0
    assert torch.isfinite(fields.grad).all() and fields.grad.abs().sum() > 0  # the generator learns through it


@pytest.mark.parametrize(
    "fields, coarse, static, message",
    [
        ((2, 1, 16, 24), (2, 3, 4, 6), (2, 2, 16, 24), r"fields of shape \(batch, 2, H, W\).*got \(2, 1, 16, 24\)"),
        ((2, 2, 16), (2, 3, 4, 6), (2, 2, 16, 24), r"fields of shape \(batch, 2, H, W\).*got \(2, 2, 16\)"),
        ((2, 2, 15, 24), (2, 3, 4, 6), (2, 2, 15, 24), r"h \* 4 x w \* 4 cells.*15 x 24 grid"),
        ((2, 2, 16, 24), (2, 3, 4, 5), (2, 2, 16, 24), r"coarse inputs of shape \(2, 3, 4, 6\).*got \(2, 3, 4, 5\)"),
        ((2, 2, 16, 24), (2, 1, 4, 6), (2, 2, 16, 24), r"coarse inputs of shape \(2, 3, 4, 6\).*got \(2, 1, 4, 6\)"),
        ((2, 2, 16, 24), (1, 3, 4, 6), (2, 2, 16, 24), r"coarse inputs of shape \(2, 3, 4, 6\)"),
        ((2, 3, 2, 16, 24), (2, 3, 4, 6), (2, 2, 16, 24), r"coarse inputs of shape \(2, 3, 3, 4, 6\) \(batch, time,"),
        ((2, 2, 16, 24), (2, 3, 4, 6), None, r"static fields of shape \(2, 2, 16, 24\).*got None"),
        ((2, 2, 16, 24), (2, 3, 4, 6), (2, 2, 8, 12), r"static fields of shape \(2, 2, 16, 24\).*got \(2, 2, 8, 12\)"),
        ((2, 3, 2, 16, 24), (2, 3, 3, 4, 6), (6, 2, 16, 24), r"static fields of shape \(2, 2, 16, 24\)"),
    ],
)
def test_discriminator_rejects_wrong_shapes(fields, coarse, static, message):
    discriminator = ConditionalDiscriminator(2, 3, 2, 4, n_filters=4, depth=1)
    with pytest.raises(ValueError, match=message):
        discriminator(torch.randn(fields), torch.randn(coarse), None if static is None else torch.randn(static))


def test_discriminator_without_static_fields_refuses_them():
    discriminator = ConditionalDiscriminator(1, 1, 0, 2, n_filters=4, depth=1)
    with pytest.raises(ValueError, match=r"static_channels=0.*pass static=None"):
        discriminator(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 4, 4), torch.randn(1, 1, 8, 8))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_filters": 0}, r"n_filters=0 .*must be >= 1"),
        ({"depth": -1}, r"depth=-1 .*must be >= 0"),
        ({"target_channels": 0}, r"target_channels=0 .*must be >= 1"),
        ({"static_channels": -1}, r"static_channels=-1 .*must be >= 0"),
    ],
)
def test_discriminator_rejects_bad_parameters(params, message):
    arguments = {"target_channels": 1, "input_channels": 1, "static_channels": 0, "scale": 4, **params}
    with pytest.raises(ConfigError, match=message):
        ConditionalDiscriminator(**arguments)
