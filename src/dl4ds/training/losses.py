"""Training losses for deterministic networks and ensembles, on normalised fields with per-cell weights.

Every loss term, and the :class:`CompositeLoss` that combines them, is called as
``loss(prediction, target, weight) -> scalar tensor`` with

- ``prediction``: (B, K, V, H, W), K >= 1 ensemble members per sample (K = 1 for a deterministic network);
- ``target``: (B, V, H, W), the truth;
- ``weight``: (B, V, H, W), >= 0 per cell. 0 excludes a cell (no truth there, or outside the region of
  interest); other values weight cells, e.g. by the cosine of latitude.

All fields are normalised (mean 0, standard deviation about 1 per variable), so every loss is in normalised
units. Reductions over cells are weighted means ``sum(w * e) / sum(w)``, which are 0 (not NaN) when every weight
is 0. Each term computes in float32 with autocast disabled (on CPU and CUDA), so it may be called inside a
bf16/fp16 autocast region. Gradients with respect to ``prediction`` are finite everywhere, also where weights
are 0 (they are 0 there).

============  ======================  =================================================================
name          applies to              what it measures
============  ======================  =================================================================
``mae``       ensemble mean           weighted mean ``|mean_k x_k - y|``
``mse``       ensemble mean           weighted mean ``(mean_k x_k - y)^2``
``crps``      the ensemble            fair (unbiased) ensemble CRPS per cell, weighted mean
``dssim``     each member, averaged   ``(1 - SSIM) / 2``, Gaussian-window SSIM
``ms_dssim``  each member, averaged   ``1 - MS-SSIM``, multi-scale SSIM (Wang et al. 2003)
``spectral``  each member, averaged   mean ``|log P_pred(k) - log P_true(k)|`` of radial power spectra
============  ======================  =================================================================

The content losses ``mae`` and ``mse`` act on the ensemble mean (as in Harris et al. 2022), so that an
ensemble trained with them together with ``crps`` keeps its spread. ``dssim``, ``ms_dssim`` and ``spectral``
judge each member as a realistic field on its own. Combine terms with :func:`create_loss`, e.g.
``create_loss({"mae": 1.0, "spectral": 0.1})``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from dl4ds.errors import ConfigError

LossTerm = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``term(prediction (B, K, V, H, W), target (B, V, H, W), weight (B, V, H, W)) -> scalar tensor``."""

#: Smallest denominator of a weighted mean: an all-zero weight gives 0 instead of NaN.
_TINY = torch.finfo(torch.float32).tiny

#: SSIM: standard deviation (cells) and largest size of the Gaussian window; stabilising constants K1, K2.
SSIM_SIGMA = 1.5
SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: SSIM: lower bound of the dynamic range L of the target, in normalised units.
SSIM_MIN_RANGE = 1e-6

#: MS-SSIM: the scale weights of Wang et al. (2003), finest scale first, and the short side (cells) that the
#: coarsest scale must still have.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIZE = 4
#: MS-SSIM: the per-scale factors are clamped to [MS_SSIM_FLOOR, 1] before their fractional powers.
MS_SSIM_FLOOR = 1e-6

#: Spectral loss: added to the binned power before the logarithm.
SPECTRAL_EPS = 1e-8


def _autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that turns autocast off on ``device`` (CPU and CUDA, the autocast backends of every torch 2.x)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _float32_term(term: LossTerm) -> LossTerm:
    """Wrap ``term`` to run in float32 with autocast disabled, whatever the dtypes of its inputs."""

    @functools.wraps(term)
    def wrapped(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        with _autocast_disabled(prediction.device):
            return term(prediction.float(), target.float(), weight.float())

    return wrapped


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(weight * values) / sum(weight)`` over all elements, 0 when every weight is 0.

    ``weight`` broadcasts against ``values``; a weight broadcast along a dimension counts once per element.
    """
    weight = torch.broadcast_to(weight, values.shape)
    return (weight * values).sum() / weight.sum().clamp_min(_TINY)


def _masked_members(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The members (B, K, V, H, W) with the target put in place of the prediction where the weight is 0.

    Excluded cells then agree exactly with the truth, so filters and Fourier transforms that reach across them
    see no error there. The gradient with respect to the prediction is 0 at those cells.
    """
    return torch.where(weight.unsqueeze(1) > 0, prediction, target.unsqueeze(1))


# --------------------------------------------------------------------------------------------------------------
# Pixel losses and CRPS
# --------------------------------------------------------------------------------------------------------------


@_float32_term
def mae_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean absolute error of the ensemble mean: ``sum(w |mean_k x_k - y|) / sum(w)``."""
    return _weighted_mean((prediction.mean(1) - target).abs(), weight)


@_float32_term
def mse_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared error of the ensemble mean: ``sum(w (mean_k x_k - y)^2) / sum(w)``."""
    return _weighted_mean((prediction.mean(1) - target).square(), weight)


@_float32_term
def crps_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of the fair (unbiased) ensemble CRPS per cell.

    For K >= 2 members x_1..x_K and truth y, per cell::

        CRPS = (1/K) sum_k |x_k - y|  -  1/(2K(K-1)) sum_{k != l} |x_k - x_l|

    The pairwise sum is computed from the members sorted in ascending order, x_(0) <= ... <= x_(K-1):
    ``sum_{k != l} |x_k - x_l| = 2 sum_i (2i - K + 1) x_(i)``, in O(B K V H W) memory. For K = 1 the CRPS is
    ``|x - y|``, the absolute error. Its expectation is the CRPS of the distribution the members are drawn
    from, whatever K, so it rewards calibrated spread.
    """
    members = prediction.shape[1]
    skill = (prediction - target.unsqueeze(1)).abs().mean(1)
    if members == 1:
        return _weighted_mean(skill, weight)
    ordered = prediction.sort(dim=1).values
    rank = torch.arange(members, device=prediction.device, dtype=prediction.dtype)
    coefficient = (2 * rank - members + 1).view(1, members, 1, 1, 1)
    spread = (coefficient * ordered).sum(1) / (members * (members - 1))
    return _weighted_mean(skill - spread, weight)


# --------------------------------------------------------------------------------------------------------------
# SSIM and MS-SSIM
# --------------------------------------------------------------------------------------------------------------


def _gaussian_window(height: int, width: int, device: torch.device) -> torch.Tensor:
    """The normalised 1-D Gaussian window (S,) of standard deviation SSIM_SIGMA cells.

    S is SSIM_WINDOW, truncated to the largest odd size <= min(height, width) (at least 1), so that the window
    fits small patches and reflect padding by (S - 1) / 2 cells is always possible.
    """
    size = min(SSIM_WINDOW, height, width)
    if size % 2 == 0:
        size -= 1
    offsets = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    window = torch.exp(-offsets.square() / (2 * SSIM_SIGMA**2))
    return window / window.sum()


def _blur(fields: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of ``fields`` (..., H, W) with ``window`` (S,), same size, reflect padding."""
    *lead, height, width = fields.shape
    size = window.numel()
    pad = size // 2
    flat = F.pad(fields.reshape(-1, 1, height, width), (pad, pad, pad, pad), mode="reflect")
    flat = F.conv2d(flat, window.view(1, 1, size, 1))
    flat = F.conv2d(flat, window.view(1, 1, 1, size))
    return flat.reshape(*lead, height, width)


def _data_range(target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Dynamic range L (B, V) of the target over cells with weight > 0, at least SSIM_MIN_RANGE, no gradient."""
    with torch.no_grad():
        valid = weight > 0
        highest = target.masked_fill(~valid, -math.inf).amax((-2, -1))
        lowest = target.masked_fill(~valid, math.inf).amin((-2, -1))
        spread = torch.where(valid.any((-2, -1)), highest - lowest, torch.zeros_like(highest))
        return spread.clamp_min(SSIM_MIN_RANGE)


def _ssim_scale(
    members: torch.Tensor, truth: torch.Tensor, weight: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted-mean SSIM and contrast-structure term of each member at one scale.

    Args:
        members: (B, K, V, H, W) predictions, already replaced by the truth where the weight is 0.
        truth: (B, 1, V, H, W).
        weight: (B, 1, V, H, W).
        c1, c2: (B, 1, V, 1, 1) stabilising constants (K1 L)^2 and (K2 L)^2.

    Returns:
        ``(ssim, cs)``, each (B, K, V): the weighted means over (H, W) of the SSIM map ``l * cs`` and of the
        contrast-structure map ``cs``, where, with Gaussian-weighted local means mu, variances s^2 and
        covariance s_xy, ``l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)`` and
        ``cs = (2 s_xy + C2) / (s_x^2 + s_y^2 + C2)``.
    """
    height, width = truth.shape[-2:]
    window = _gaussian_window(height, width, device=truth.device)
    # Moments about each field's own mean (constant shifts leave variances and covariances unchanged) limit the
    # float32 cancellation in E[x^2] - E[x]^2, so that a constant field has a variance of exactly 0.
    offset_x = members.detach().mean((-2, -1), keepdim=True)
    offset_y = truth.mean((-2, -1), keepdim=True)
    x = members - offset_x
    y = truth - offset_y
    mu_x = _blur(x, window)
    mu_y = _blur(y, window)
    var_x = (_blur(x.square(), window) - mu_x.square()).clamp_min(0)
    var_y = (_blur(y.square(), window) - mu_y.square()).clamp_min(0)
    cov = _blur(x * y, window) - mu_x * mu_y
    mean_x = mu_x + offset_x
    mean_y = mu_y + offset_y
    luminance = (2 * mean_x * mean_y + c1) / (mean_x.square() + mean_y.square() + c1)
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    total = weight.sum((-2, -1)).clamp_min(_TINY)
    ssim = (luminance * contrast_structure * weight).sum((-2, -1)) / total
    cs = (contrast_structure * weight).sum((-2, -1)) / total
    return ssim, cs


def _ssim_inputs(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masked members (B, K, V, H, W), truth and weight (B, 1, V, H, W), and C1, C2 (B, 1, V, 1, 1)."""
    data_range = _data_range(target, weight).view(target.shape[0], 1, target.shape[1], 1, 1)
    members = _masked_members(prediction, target, weight)
    return (
        members,
        target.unsqueeze(1),
        weight.unsqueeze(1),
        (SSIM_K1 * data_range).square(),
        (SSIM_K2 * data_range).square(),
    )


@_float32_term
def dssim_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Structural dissimilarity ``(1 - SSIM) / 2`` of each member, averaged over members, in [0, 1].

    SSIM (Wang et al. 2004) uses a Gaussian window of standard deviation 1.5 cells and size 7, truncated to
    the largest odd size <= min(H, W), filtering a reflect-padded field to a map of the same size (H, W).
    C1 = (0.01 L)^2 and C2 = (0.03 L)^2, where L is the range (max - min) of the target over the cells with
    weight > 0 of each sample and variable, at least 1e-6 (no gradient flows through L). Before filtering, the
    prediction is replaced by the target where the weight is 0, so excluded cells do not disturb the windows
    of their neighbours. The SSIM map is reduced with the weights, i.e. the loss is
    ``sum_{b,k,v,h,w} w (1 - SSIM_map) / 2 / sum(w)`` with the weight shared by the K members.
    """
    members, truth, cell_weight, c1, c2 = _ssim_inputs(prediction, target, weight)
    ssim, _ = _ssim_scale(members, truth, cell_weight, c1, c2)
    return _weighted_mean((1 - ssim) / 2, cell_weight.sum((-2, -1)))


def _pool(fields: torch.Tensor) -> torch.Tensor:
    """2 x 2 average pooling of (..., H, W) to (..., H // 2, W // 2); an odd last row or column is dropped."""
    *lead, height, width = fields.shape
    pooled = F.avg_pool2d(fields.reshape(-1, 1, height, width), 2)
    return pooled.reshape(*lead, height // 2, width // 2)


def ms_ssim_scales(height: int, width: int) -> int:
    """Number M (1..5) of MS-SSIM scales for an (height, width) patch.

    The patch is halved while its short side is >= 2 * MS_SSIM_MIN_SIZE, so that every scale keeps at least
    MS_SSIM_MIN_SIZE cells on its short side; a patch shorter than that has the single scale M = 1.
    """
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and min(height, width) >= 2 * MS_SSIM_MIN_SIZE:
        height, width = height // 2, width // 2
        scales += 1
    return scales


@_float32_term
def ms_dssim_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Multi-scale structural dissimilarity ``1 - MS-SSIM`` of each member, averaged over members, in [0, 1].

    The scales j = 1..M (M = :func:`ms_ssim_scales`, at most 5) are the full field and its successive 2 x 2
    average poolings; the weight is average-pooled alongside, and the prediction is replaced by the target where
    the weight is 0 at full resolution, before pooling. At each scale, SSIM, C1 and C2 are as in
    :func:`dssim_loss` (L of the full-resolution target at every scale). Per sample, member and variable::

        MS-SSIM = SSIM_M^{w_M} * prod_{j=1..M-1} cs_j^{w_j}

    where cs_j is the weighted mean over cells of the contrast-structure map at scale j, SSIM_M the weighted
    mean of the full SSIM map (luminance times contrast-structure) at the coarsest scale, as in the reference
    implementation of Wang et al. (2003), and w_1..w_M the first M of the weights (0.0448, 0.2856, 0.3001,
    0.2363, 0.1333), renormalised to sum to 1. For the usual stabilisation, each factor is clamped to
    [1e-6, 1] before its fractional power (a negative cs would otherwise give NaN).

    For M = 1 (patches with a short side < 8 cells), MS-SSIM is the SSIM, so that ``ms_dssim = 2 * dssim``
    wherever the SSIM of every field is >= 1e-6. The per-field values are averaged over members, and over
    samples and variables weighted by their total cell weight (fields with no weight do not count).
    """
    members, truth, cell_weight, c1, c2 = _ssim_inputs(prediction, target, weight)
    field_weight = cell_weight.sum((-2, -1))
    scales = ms_ssim_scales(*target.shape[-2:])
    exponents = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=prediction.device)
    exponents = exponents / exponents.sum()
    similarity = torch.ones_like(members[..., 0, 0])
    for scale in range(scales):
        ssim, cs = _ssim_scale(members, truth, cell_weight, c1, c2)
        if scale == scales - 1:
            similarity = similarity * ssim.clamp(MS_SSIM_FLOOR, 1) ** exponents[scale]
        else:
            similarity = similarity * cs.clamp(MS_SSIM_FLOOR, 1) ** exponents[scale]
            members, truth, cell_weight = _pool(members), _pool(truth), _pool(cell_weight)
    return _weighted_mean(1 - similarity, field_weight)


# --------------------------------------------------------------------------------------------------------------
# Spectral loss
# --------------------------------------------------------------------------------------------------------------


def _radial_bins(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Radial wavenumber bins of the rfft2 coefficients of an (height, width) field.

    Returns:
        ``(index, multiplicity, bins)``: ``index`` (height * (width // 2 + 1),) the bin of each coefficient,
        ``round(max(height, width) * sqrt(fy^2 + fx^2))`` with fy = fftfreq(height), fx = rfftfreq(width)
        in cycles per cell; ``multiplicity`` (same shape) 2 for the columns 0 < fx < 0.5, which stand for
        two conjugate coefficients of the full FFT, else 1; ``bins`` the largest bin index.
    """
    fy = torch.fft.fftfreq(height, dtype=torch.float64, device=device)
    fx = torch.fft.rfftfreq(width, dtype=torch.float64, device=device)
    radius = torch.sqrt(fy.view(-1, 1).square() + fx.view(1, -1).square())
    index = torch.round(radius * max(height, width)).long()
    column = torch.arange(fx.numel(), device=device)
    doubled = (column > 0) & (2 * column < width)
    multiplicity = torch.where(doubled, 2.0, 1.0).to(torch.float32).expand(height, -1)
    return index.flatten(), multiplicity.flatten(), int(index.max())


def _binned_power(fields: torch.Tensor, index: torch.Tensor, multiplicity: torch.Tensor, bins: int) -> torch.Tensor:
    """Radially averaged power (..., bins + 1) of ``fields`` (..., H, W); bin 0 holds the zero frequency.

    The power ``|rfft2(field, norm="ortho")|^2`` is averaged within each bin, each coefficient counted
    ``multiplicity`` times. Empty bins hold 0.
    """
    *lead, _height, _width = fields.shape
    power = torch.fft.rfft2(fields, norm="ortho").abs().square().reshape(*lead, -1)
    sums = power.new_zeros(*lead, bins + 1).index_add(-1, index, power * multiplicity)
    counts = multiplicity.new_zeros(bins + 1).index_add(0, index, multiplicity)
    return sums / counts.clamp_min(1)


@_float32_term
def spectral_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute log-ratio of the radial power spectra of each member and of the target.

    After the prediction is replaced by the target where the weight is 0, for each member, sample and
    variable::

        P(k) = sum_{c in bin k} m_c |F_c|^2 / sum_{c in bin k} m_c,      F = rfft2(field, norm="ortho")
        loss = mean over bins k = 1..k_max of |log(P_pred(k) + 1e-8) - log(P_true(k) + 1e-8)|

    where the bin of coefficient c at frequencies (fy, fx) (fy = fftfreq(H), fx = rfftfreq(W), cycles per cell)
    is ``round(max(H, W) * sqrt(fy^2 + fx^2))``, bin 0 (the mean) is left out, so are bins without coefficients,
    and m_c = 2 for the columns 0 < fx < 0.5 (two conjugate coefficients of the full FFT), else 1. The loss is
    averaged over members, samples and variables. Other than marking excluded cells, the weights (e.g.
    cos-latitude) play no part. Being phase-blind, it rewards realistic variance at each scale rather than
    matching cells: a periodic shift of the target costs nothing, and doubling the field costs log(4).

    Raises:
        ValueError: for a 1 x 1 field, which has no non-zero wavenumber.
    """
    height, width = target.shape[-2:]
    index, multiplicity, bins = _radial_bins(height, width, target.device)
    if bins == 0:
        raise ValueError("the spectral loss needs fields of at least 2 cells along one side, got 1 x 1")
    occupied = multiplicity.new_zeros(bins + 1).index_add(0, index, multiplicity)[1:] > 0
    members = _masked_members(prediction, target, weight)
    power_pred = _binned_power(members, index, multiplicity, bins)[..., 1:][..., occupied]
    power_true = _binned_power(target.unsqueeze(1), index, multiplicity, bins)[..., 1:][..., occupied]
    log_ratio = torch.log(power_pred + SPECTRAL_EPS) - torch.log(power_true + SPECTRAL_EPS)
    return log_ratio.abs().mean()


# --------------------------------------------------------------------------------------------------------------
# Registry and combination
# --------------------------------------------------------------------------------------------------------------

LOSSES: dict[str, LossTerm] = {
    "mae": mae_loss,
    "mse": mse_loss,
    "crps": crps_loss,
    "dssim": dssim_loss,
    "ms_dssim": ms_dssim_loss,
    "spectral": spectral_loss,
}


def list_losses() -> list[str]:
    """The names of the registered loss terms, sorted."""
    return sorted(LOSSES)


def check_shapes(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> None:
    """Raise ValueError unless prediction is (B, K, V, H, W) and target and weight are both (B, V, H, W)."""
    if (
        prediction.ndim != 5
        or target.ndim != 4
        or weight.shape != target.shape
        or prediction.shape[0] != target.shape[0]
        or prediction.shape[2:] != target.shape[1:]
    ):
        raise ValueError(
            "a loss expects prediction (B, K, V, H, W) and target and weight (B, V, H, W) with the same B, V, H, W; "
            f"got prediction {tuple(prediction.shape)}, target {tuple(target.shape)}, weight {tuple(weight.shape)}"
        )


def _validated_weights(spec: object) -> dict[str, float]:
    """The weights of a mapping term name -> weight, checked; raises ConfigError naming the problem and fix."""
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"a loss is a term name or a mapping of term names to weights, got {type(spec).__name__}; "
            f"e.g. 'mae' or {{'mae': 1.0, 'spectral': 0.1}}"
        )
    if not spec:
        raise ConfigError(f"the loss has no terms; give at least one of {list_losses()} with a positive weight")
    weights: dict[str, float] = {}
    for name, value in spec.items():
        if name not in LOSSES:
            raise ConfigError(f"unknown loss term {name!r}; choose from {list_losses()}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise ConfigError(f"the weight of loss term {name!r} must be a finite number >= 0, got {value!r}")
        weights[name] = number
    if not any(weights.values()):
        raise ConfigError(f"all loss weights are 0 in {weights}; give at least one term a positive weight")
    return weights


class CompositeLoss:
    """A weighted sum of registered loss terms: ``total = sum_i weights[i] * term_i``.

    Terms with weight 0 are still computed and reported by :meth:`terms` (to monitor them) but do not enter the
    total. :func:`create_loss` also accepts a single term name.

    Args:
        weights: term name (one of :func:`list_losses`) -> weight, a finite number >= 0; not all 0.

    Attributes:
        weights: term name -> weight as a float, in the order given.

    Raises:
        ConfigError: for an unknown name, no terms, a weight that is not a finite number >= 0, or only zero weights.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        self.weights: dict[str, float] = _validated_weights(weights)

    @property
    def needs_ensemble(self) -> bool:
        """True when the loss includes ``crps``, which needs K >= 2 members to judge the spread."""
        return "crps" in self.weights

    def terms(self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each unweighted term (a scalar float32 tensor) by name, in the order of :attr:`weights`.

        Args:
            prediction: (B, K, V, H, W) ensemble of K >= 1 members, normalised units.
            target: (B, V, H, W) truth, normalised, 0 where missing.
            weight: (B, V, H, W) cell weights >= 0, 0 where excluded.

        Raises:
            ValueError: when the shapes do not match.
        """
        check_shapes(prediction, target, weight)
        return {name: LOSSES[name](prediction, target, weight) for name in self.weights}

    def combine(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The total ``sum_i weights[i] * terms[i]`` over the terms of non-zero weight, from :meth:`terms`."""
        weighted = [self.weights[name] * value for name, value in terms.items() if self.weights[name] > 0]
        return torch.stack(weighted).sum()

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The weighted total (a scalar tensor); see :meth:`terms` for the arguments."""
        return self.combine(self.terms(prediction, target, weight))

    def __repr__(self) -> str:
        return "CompositeLoss(" + ", ".join(f"{name}={weight:g}" for name, weight in self.weights.items()) + ")"


def create_loss(spec: str | Mapping[str, float]) -> CompositeLoss:
    """Build a :class:`CompositeLoss` from a term name (weight 1) or a mapping term name -> weight.

    Examples: ``create_loss("mae")``, ``create_loss({"mae": 1.0, "spectral": 0.1})``.

    Raises:
        ConfigError: for an unknown name, an empty mapping, a weight that is not a finite number >= 0, weights
            that are all 0, or a ``spec`` that is neither a string nor a mapping.
    """
    return CompositeLoss({spec: 1.0} if isinstance(spec, str) else spec)
