"""Loss terms and their combination, each checked against values worked out by hand or by an independent numpy
computation."""

import itertools
import math

import numpy as np
import pytest
import torch

from dl4ds.errors import ConfigError
from dl4ds.training.losses import (
    LOSSES,
    CompositeLoss,
    create_loss,
    crps_loss,
    dssim_loss,
    list_losses,
    mae_loss,
    ms_dssim_loss,
    ms_ssim_scales,
    mse_loss,
    spectral_loss,
)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def random_fields(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def smooth_field(seed: int, size: int) -> torch.Tensor:
    """A (1, 1, size, size) field with large-scale structure, as climate fields have, standardised."""
    coarse = random_fields(seed, (1, 1, size // 8, size // 8))
    field = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    return (field - field.mean()) / field.std()


# ----------------------------------------------------------------------------------------------------- mae / mse

# One sample, one variable, 2 x 2 cells; the top-right cell is excluded and the bottom-left counts twice.
TARGET = t([[[[0.0, 0.0], [5.0, 4.0]]]])
WEIGHT = t([[[[1.0, 0.0], [2.0, 1.0]]]])


def test_mae_and_mse_deterministic_by_hand():
    prediction = t([[[[[1.0, 2.0], [3.0, 4.0]]]]])  # (1, 1, 1, 2, 2); errors 1, (2), -2, 0
    assert mae_loss(prediction, TARGET, WEIGHT).item() == pytest.approx((1 * 1 + 2 * 2 + 1 * 0) / 4)
    assert mse_loss(prediction, TARGET, WEIGHT).item() == pytest.approx((1 * 1 + 2 * 4 + 1 * 0) / 4)


def test_mae_and_mse_apply_to_the_ensemble_mean():
    members = t([[[[[1.0, 2.0], [3.0, 4.0]]], [[[3.0, 0.0], [5.0, 2.0]]]]])  # (1, 2, 1, 2, 2)
    # ensemble mean [[2, 1], [4, 3]]: errors 2, (1), -1, -1
    assert mae_loss(members, TARGET, WEIGHT).item() == pytest.approx((1 * 2 + 2 * 1 + 1 * 1) / 4)
    assert mse_loss(members, TARGET, WEIGHT).item() == pytest.approx((1 * 4 + 2 * 1 + 1 * 1) / 4)


# -------------------------------------------------------------------------------------------------------- crps


def test_crps_two_members_closed_form():
    members = random_fields(0, (2, 2, 3, 4, 5))
    target = random_fields(1, (2, 3, 4, 5))
    a, b = members[:, 0], members[:, 1]
    expected = (((a - target).abs() + (b - target).abs()) / 2 - (a - b).abs() / 2).mean()
    assert crps_loss(members, target, torch.ones_like(target)).item() == pytest.approx(expected.item(), abs=1e-6)


def test_crps_of_one_member_is_the_mae():
    prediction = random_fields(2, (2, 1, 3, 4, 5))
    target = random_fields(3, (2, 3, 4, 5))
    weight = random_fields(4, (2, 3, 4, 5)).abs()
    assert crps_loss(prediction, target, weight).item() == pytest.approx(mae_loss(prediction, target, weight).item())


def test_crps_three_members_against_a_double_loop():
    members = random_fields(5, (2, 3, 2, 3, 3)).numpy()
    target = random_fields(6, (2, 2, 3, 3)).numpy()
    weight = np.abs(random_fields(7, (2, 2, 3, 3)).numpy())
    weight[0, 1, 1, :] = 0.0
    k = members.shape[1]
    skill = sum(np.abs(members[:, i] - target) for i in range(k)) / k
    pairs = sum(np.abs(members[:, i] - members[:, j]) for i in range(k) for j in range(k) if i != j)
    expected = np.sum(weight * (skill - pairs / (2 * k * (k - 1)))) / np.sum(weight)
    assert crps_loss(t(members), t(target), t(weight)).item() == pytest.approx(float(expected), rel=1e-5)


def test_crps_of_a_large_gaussian_ensemble_approaches_the_closed_form():
    # CRPS(N(0, 1), 0) = 2 phi(0) - 1 / sqrt(pi) = sqrt(2 / pi) - 1 / sqrt(pi)
    members = random_fields(8, (1, 1000, 1, 8, 8))
    target = torch.zeros(1, 1, 8, 8)
    expected = math.sqrt(2 / math.pi) - 1 / math.sqrt(math.pi)
    assert crps_loss(members, target, torch.ones_like(target)).item() == pytest.approx(expected, abs=0.01)


# ------------------------------------------------------------------------------------------------------- dssim


def gaussian_local_mean(field: np.ndarray, size: int) -> np.ndarray:
    """Gaussian (sigma 1.5) local mean of a 2-D field over a size x size window, reflect padding, cell by cell."""
    offsets = np.arange(size) - (size - 1) / 2
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    kernel = np.outer(g, g) / np.sum(np.outer(g, g))
    pad = size // 2
    padded = np.pad(field, pad, mode="reflect")
    out = np.empty_like(field)
    for i in range(field.shape[0]):
        for j in range(field.shape[1]):
            out[i, j] = np.sum(kernel * padded[i : i + size, j : j + size])
    return out


def test_dssim_of_identical_fields_is_zero():
    target = random_fields(9, (2, 2, 16, 12))
    assert abs(dssim_loss(target.unsqueeze(1), target, torch.ones_like(target)).item()) < 1e-6


def test_dssim_of_a_shifted_field_is_the_luminance_term():
    # x = y + c: contrast and structure agree exactly (cs = 1), so SSIM is the luminance term
    # l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) with mu_x = mu_y + c.
    # A 6 x 6 field has a window of 5 cells (the largest odd size <= 6).
    target = random_fields(10, (6, 6)).numpy().astype(np.float64)
    weight = np.cos(np.deg2rad(np.linspace(40.0, 60.0, 6)))[:, None] * np.ones((1, 6))
    c = 0.3
    c1 = (0.01 * (target.max() - target.min())) ** 2
    mu_y = gaussian_local_mean(target, 5)
    mu_x = mu_y + c
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    expected = np.sum(weight * (1 - luminance) / 2) / np.sum(weight)
    y = t(target).view(1, 1, 6, 6)
    loss = dssim_loss((y + c).unsqueeze(1), y, t(weight).view(1, 1, 6, 6))
    assert loss.item() == pytest.approx(float(expected), abs=2e-6)


@pytest.mark.parametrize("name", ["dssim", "ms_dssim", "spectral"])
@pytest.mark.parametrize("size", [(1, 1), (1, 4), (2, 2), (3, 3), (5, 5), (4, 9)])
def test_small_patches_give_finite_values_and_gradients(name, size):
    if name == "spectral" and size == (1, 1):
        with pytest.raises(ValueError, match="1 x 1"):
            spectral_loss(torch.zeros(1, 1, 1, 1, 1), torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
        return
    target = random_fields(11, (2, 1, *size))
    prediction = random_fields(12, (2, 2, 1, *size)).requires_grad_()
    loss = LOSSES[name](prediction, target, torch.ones_like(target))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(prediction.grad).all()


# ---------------------------------------------------------------------------------------------------- ms_dssim


@pytest.mark.parametrize(("height", "width", "scales"), [(7, 7, 1), (8, 8, 2), (16, 100, 3), (64, 64, 5), (512, 64, 5)])
def test_number_of_ms_ssim_scales(height, width, scales):
    assert ms_ssim_scales(height, width) == scales


def test_ms_dssim_on_one_scale_is_twice_the_dssim():
    # 7 x 7 patches have M = 1 scale, where MS-SSIM = SSIM: 1 - MS-SSIM = 2 * (1 - SSIM) / 2
    target = random_fields(13, (2, 3, 7, 7))
    prediction = (target.unsqueeze(1) + 0.3 * random_fields(14, (2, 2, 3, 7, 7))).requires_grad_()
    weight = random_fields(15, (2, 3, 7, 7)).abs()
    weight[1, 2, :3] = 0.0
    ms = ms_dssim_loss(prediction, target, weight)
    single = dssim_loss(prediction, target, weight)
    assert 0.0 < single.item() < 0.5
    assert ms.item() == pytest.approx(2 * single.item(), rel=1e-5)


def test_ms_dssim_of_identical_fields_is_zero():
    target = random_fields(16, (2, 2, 64, 48))
    assert abs(ms_dssim_loss(target.unsqueeze(1), target, torch.ones_like(target)).item()) < 1e-6


def test_ms_dssim_decreases_as_the_prediction_approaches_the_target():
    target = smooth_field(17, 64)  # (1, 1, 64, 64)
    noise = random_fields(18, (1, 1, 1, 64, 64))
    losses = [
        ms_dssim_loss(target.unsqueeze(1) + scale * noise, target, torch.ones_like(target)).item()
        for scale in (2.0, 1.0, 0.5, 0.2, 0.05)
    ]
    assert all(math.isfinite(value) for value in losses)
    assert all(earlier > later for earlier, later in itertools.pairwise(losses))
    assert losses[-1] > 0.0


# ---------------------------------------------------------------------------------------------------- spectral


def test_spectral_loss_of_a_2x2_field_by_hand():
    # For 2 x 2 cells, the three non-zero frequencies (0, 1/2), (1/2, 0), (1/2, 1/2) all fall in bin 1
    # (radius 0.5 or 0.71 cycles per cell, times 2). With the orthonormal FFT of [[a, b], [c, d]]:
    # F01 = (a - b + c - d) / 2, F10 = (a + b - c - d) / 2, F11 = (a - b - c + d) / 2.
    # Target [[1, 0], [0, 0]]: |F|^2 = 1/4 each, P = 1/4; prediction [[1, 1], [0, 0]]: F = 0, 1, 0, P = 1/3.
    target = t([[[[1.0, 0.0], [0.0, 0.0]]]])
    prediction = t([[[[[1.0, 1.0], [0.0, 0.0]]]]])
    expected = abs(math.log(1 / 3 + 1e-8) - math.log(1 / 4 + 1e-8))
    assert spectral_loss(prediction, target, torch.ones_like(target)).item() == pytest.approx(expected, rel=1e-6)


def full_fft_radial_power(field: np.ndarray) -> np.ndarray:
    """Radially binned power of a 2-D field from the full (not real) FFT; bins 1..max, without empty bins."""
    height, width = field.shape
    power = np.abs(np.fft.fft2(field, norm="ortho")) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij"))
    index = np.round(radius * max(height, width)).astype(int)
    return np.array([power[index == k].mean() for k in range(1, index.max() + 1) if np.any(index == k)])


@pytest.mark.parametrize("size", [(4, 4), (6, 5), (5, 8), (9, 7)])
def test_spectral_loss_matches_the_full_fft_binning(size):
    # rfft2 keeps about half the coefficients; its columns 0 < fx < 0.5 count twice, as their conjugates would
    target = random_fields(19, size).numpy().astype(np.float64)
    prediction = random_fields(20, size).numpy().astype(np.float64)
    true_power = full_fft_radial_power(target)
    pred_power = full_fft_radial_power(prediction)
    expected = np.mean(np.abs(np.log(pred_power + 1e-8) - np.log(true_power + 1e-8)))
    loss = spectral_loss(t(prediction).view(1, 1, 1, *size), t(target).view(1, 1, *size), torch.ones(1, 1, *size))
    assert loss.item() == pytest.approx(float(expected), rel=1e-5)


def test_spectral_loss_of_identical_fields_is_zero():
    target = random_fields(21, (2, 3, 16, 20))
    assert spectral_loss(target.unsqueeze(1), target, torch.ones_like(target)).item() == 0.0


def test_spectral_loss_of_a_doubled_field_is_log_four():
    target = random_fields(22, (2, 2, 32, 24))
    target = target - target.mean((-2, -1), keepdim=True)
    loss = spectral_loss(2 * target.unsqueeze(1), target, torch.ones_like(target))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-5)


def test_spectral_loss_is_phase_blind():
    target = random_fields(23, (1, 2, 32, 32))
    rolled = torch.roll(target, shifts=(5, -11), dims=(-2, -1))
    assert spectral_loss(rolled.unsqueeze(1), target, torch.ones_like(target)).item() < 1e-5


def test_spectral_loss_replaces_excluded_cells_by_the_target():
    target = random_fields(24, (1, 1, 16, 16))
    weight = torch.ones_like(target)
    weight[..., 4:9, 2:7] = 0.0
    prediction = torch.where(weight > 0, target, 100.0).unsqueeze(1)
    assert spectral_loss(prediction, target, weight).item() == 0.0


# -------------------------------------------------------------------------------------------- all terms: masking


@pytest.mark.parametrize("name", list_losses())
def test_excluded_cells_do_not_change_any_term(name):
    target = random_fields(25, (2, 2, 12, 10))
    weight = random_fields(26, (2, 2, 12, 10)).abs()
    weight[0, :, 3:7, 2:5] = 0.0
    weight[1, 1] = 0.0
    prediction = target.unsqueeze(1) + 0.5 * random_fields(27, (2, 3, 2, 12, 10))
    changed = torch.where(weight.unsqueeze(1) > 0, prediction, random_fields(28, prediction.shape) * 10)
    expected = LOSSES[name](prediction, target, weight).item()
    assert LOSSES[name](changed, target, weight).item() == pytest.approx(expected)


@pytest.mark.parametrize("name", list_losses())
def test_all_zero_weights_give_zero(name):
    target = random_fields(29, (1, 2, 8, 8))
    prediction = random_fields(30, (1, 2, 2, 8, 8)).requires_grad_()
    loss = LOSSES[name](prediction, target, torch.zeros_like(target))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(prediction.grad == 0)


@pytest.mark.parametrize("name", list_losses())
def test_terms_compute_in_float32_under_bf16_autocast(name):
    target = random_fields(31, (1, 2, 16, 16))
    prediction = target.unsqueeze(1) + 0.5 * random_fields(32, (1, 2, 2, 16, 16))
    weight = torch.ones_like(target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = LOSSES[name](prediction.bfloat16(), target, weight)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(LOSSES[name](prediction.bfloat16().float(), target, weight).item(), rel=1e-5)


# ------------------------------------------------------------------------------------------------- combination


def test_a_name_is_one_term_of_weight_one():
    loss = create_loss("mae")
    assert isinstance(loss, CompositeLoss)
    assert loss.weights == {"mae": 1.0}
    assert not loss.needs_ensemble
    assert repr(loss) == "CompositeLoss(mae=1)"


def test_composite_loss_is_the_weighted_sum_of_its_terms():
    loss = create_loss({"mae": 1.0, "crps": 0.5, "spectral": 0.1, "ms_dssim": 0.0})
    assert loss.needs_ensemble
    assert repr(loss) == "CompositeLoss(mae=1, crps=0.5, spectral=0.1, ms_dssim=0)"
    target = random_fields(33, (2, 2, 16, 16))
    prediction = target.unsqueeze(1) + random_fields(34, (2, 3, 2, 16, 16))
    weight = torch.ones_like(target)
    terms = loss.terms(prediction, target, weight)
    assert list(terms) == ["mae", "crps", "spectral", "ms_dssim"]
    for name, value in terms.items():
        assert value.item() == pytest.approx(LOSSES[name](prediction, target, weight).item())
    expected = terms["mae"] + 0.5 * terms["crps"] + 0.1 * terms["spectral"]
    assert loss(prediction, target, weight).item() == pytest.approx(expected.item())
    assert loss.combine(terms).item() == pytest.approx(expected.item())


def test_gradients_of_every_term_are_finite_and_zero_at_excluded_cells():
    loss = create_loss(dict.fromkeys(list_losses(), 1.0))
    target = random_fields(35, (2, 2, 16, 12))
    weight = random_fields(36, (2, 2, 16, 12)).abs()
    weight[weight < 0.3] = 0.0
    prediction = random_fields(37, (2, 3, 2, 16, 12)).requires_grad_()
    total = loss(prediction, target, weight)
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(prediction.grad).all()
    excluded = (weight == 0).unsqueeze(1).expand_as(prediction)
    assert torch.all(prediction.grad[excluded] == 0)
    assert prediction.grad[~excluded].abs().sum() > 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("l1", "unknown loss term 'l1'.*crps.*dssim.*mae.*ms_dssim.*mse.*spectral"),
        ({"mae": 1.0, "ssim": 1.0}, "unknown loss term 'ssim'"),
        ({}, "no terms"),
        ({"mae": -1.0}, "finite number >= 0"),
        ({"mae": math.nan}, "finite number >= 0"),
        ({"mae": math.inf}, "finite number >= 0"),
        ({"mae": "heavy"}, "finite number >= 0"),
        ({"mae": 0.0, "crps": 0.0}, "all loss weights are 0"),
        (["mae"], "a term name or a mapping"),
    ],
)
def test_bad_loss_specifications(spec, message):
    with pytest.raises(ConfigError, match=message):
        create_loss(spec)


@pytest.mark.parametrize(
    ("prediction", "target", "weight"),
    [
        ((2, 1, 4, 4), (2, 1, 4, 4), (2, 1, 4, 4)),  # prediction without the member dimension
        ((2, 1, 1, 4, 4), (2, 1, 4, 4), (2, 1, 4, 5)),  # weight unlike target
        ((2, 1, 1, 4, 4), (3, 1, 4, 4), (3, 1, 4, 4)),  # batch sizes differ
        ((2, 1, 2, 4, 4), (2, 1, 4, 4), (2, 1, 4, 4)),  # variables differ
    ],
)
def test_wrong_shapes_raise(prediction, target, weight):
    with pytest.raises(ValueError, match=r"prediction \(B, K, V, H, W\)"):
        create_loss("mae")(torch.zeros(prediction), torch.zeros(target), torch.zeros(weight))
