"""The residual diffusion network: EDM preconditioning, noise schedule, Heun sampler, capabilities."""

import itertools

import pytest
import torch
from helpers import TINY_DIFFUSION

from dl4ds import networks
from dl4ds.errors import ConfigError
from dl4ds.networks.diffusion import edm_sample, noise_levels


def tiny(**params):
    torch.manual_seed(0)
    return networks.create(
        "residual_diffusion", scale=4, in_channels=2, out_channels=1, static_channels=2, **{**TINY_DIFFUSION, **params}
    )


def test_schedule_falls_from_sigma_max_to_sigma_min_then_zero():
    sigmas = noise_levels(18, 0.004, 160.0, 7.0)
    assert len(sigmas) == 19 and sigmas[0] == pytest.approx(160.0) and sigmas[-2] == pytest.approx(0.004)
    assert sigmas[-1] == 0.0 and all(a > b for a, b in itertools.pairwise(sigmas))
    assert noise_levels(1, 0.004, 160.0, 7.0) == [160.0, 0.0]


@pytest.mark.parametrize("steps", [0, -3, 2.5])
def test_fewer_than_one_step_is_refused(steps):
    with pytest.raises(ConfigError, match="at least one step"):
        noise_levels(steps, 0.004, 160.0, 7.0)


def test_heun_sampler_recovers_a_gaussian_with_an_exact_denoiser():
    """For data N(mu, 1) the ideal denoiser is (x + sigma^2 mu) / (1 + sigma^2): the sampler draws N(mu, 1).

    The discretisation error shrinks with the steps (6% on the spread at 18 steps, 1% at 40; more with churn).
    """
    mu = 2.0
    generator = torch.Generator().manual_seed(0)
    latents = [torch.randn(20000, generator=generator) for _ in range(81)]
    denoise = lambda state, sigma: (state + sigma**2 * mu) / (1 + sigma**2)  # noqa: E731
    for steps, churn in ((40, 0.0), (80, 10.0)):
        sample = edm_sample(denoise, lambda index: latents[index], noise_levels(steps, 0.004, 160.0, 7.0), churn)
        assert float(sample.mean()) == pytest.approx(mu, abs=0.03)
        assert float(sample.std()) == pytest.approx(1.0, abs=0.03)


def test_one_step_is_the_denoised_latent_and_uses_one_evaluation():
    calls = []

    def denoise(state, sigma):
        calls.append(sigma)
        return torch.zeros_like(state)

    assert float(edm_sample(denoise, lambda index: torch.ones(3), [160.0, 0.0]).abs().max()) == 0.0
    assert calls == [160.0]


def test_network_samples_differ_per_draw_repeat_with_a_seed_and_keep_shapes():
    network = tiny().eval()
    x, static = torch.randn(2, 2, 6, 5), torch.randn(2, 2, 24, 20)
    with torch.no_grad():
        torch.manual_seed(1)
        first = network.sample(x, static, steps=2)
        second = network.sample(x, static, steps=2)
        torch.manual_seed(1)
        again = network.sample(x, static, steps=2)
        one_step = network.sample(x, static, steps=1)
    assert first.shape == (2, 1, 24, 20) and torch.isfinite(one_step).all()
    assert (first - second).abs().mean() > 0.1
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_preconditioning_keeps_the_clean_field_at_low_noise():
    """D(x; sigma) -> x as sigma -> 0 (c_skip -> 1, c_out -> 0), whatever the weights."""
    network = tiny().eval()
    x, static = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 16, 16)
    state = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        _, condition = network.condition(x, static)
        torch.testing.assert_close(network.denoise(state, 1e-4, condition), state, rtol=0, atol=1e-3)


def test_capabilities_and_bad_parameters():
    network = tiny()
    assert network.stochastic and network.iterative and not network.takes_offset
    assert tiny(depth=3).size_multiple == 2  # 8 fine cells of the U-Net at scale 4
    with pytest.raises(ConfigError, match="deterministic spatial network"):
        tiny(regressor_params={**TINY_DIFFUSION["regressor_params"], "noise_channels": 2})
    with pytest.raises(ConfigError, match="sigma_min < sigma_max"):
        tiny(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ConfigError, match="unknown model"):
        tiny(regressor="resnet_spx")
