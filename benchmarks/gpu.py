"""Training and sampling speed of the diffusion model and of resnet_spc on a CUDA GPU, at 256 x 256 fine cells.

For each network and each mode (fp32, bf16 autocast, bf16 + torch.compile) prints the training samples/s
(one optimisation step of the model's own loss: MAE for resnet_spc, EDM's denoising loss for the diffusion
model), the sampling time per member (resnet_spc: one forward pass; diffusion: ``2 * steps - 1`` denoiser
evaluations) and the achieved fraction of the GPU's peak FLOP rate (FLOPs counted by
``torch.utils.flop_counter`` on one step; peak from a table of known GPUs, or ``--peak-tflops``).
Without a CUDA device it says so and exits 0.

    python benchmarks/gpu.py [--batch 8] [--steps 18] [--peak-tflops FP32,BF16]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from dl4ds import networks
from dl4ds.networks.diffusion import ResidualDiffusion

FINE = 256
SCALE = 4
# Dense peak TFLOP/s (fp32 without TF32, bf16 tensor cores) of GPUs this may meet.
PEAKS = {"H200": (67.0, 989.0), "H100": (67.0, 989.0), "A100": (19.5, 312.0), "L40S": (91.6, 362.0)}
GPU_DIFFUSION = {"n_filters": 64, "depth": 3, "embedding": 128}


def peak(name: str, override: str | None) -> tuple[float, float] | None:
    if override:
        fp32, bf16 = (float(value) for value in override.split(","))
        return fp32, bf16
    return next((values for key, values in PEAKS.items() if key in name), None)


def timed(step: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``step`` after two warm-up calls, synchronised with the GPU."""
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def flops(step: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def measure(
    architecture: str,
    params: dict,
    mode: str,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    steps: int,
    peaks: tuple[float, float] | None,
) -> str:
    """One line of figures for ``architecture`` in ``mode`` on (coarse, static, truth) batches."""
    coarse, static, truth = data
    batch, device = coarse.shape[0], coarse.device
    torch.manual_seed(0)
    network = networks.create(architecture, scale=SCALE, in_channels=1, out_channels=1, static_channels=2, **params)
    network.to(device)
    dtype = torch.bfloat16 if mode.startswith("bf16") else None
    diffusion = network if isinstance(network, ResidualDiffusion) else None
    if diffusion is not None:
        diffusion.regressor.requires_grad_(False)
        if mode.endswith("compile"):
            diffusion.denoiser = torch.compile(diffusion.denoiser)  # type: ignore[assignment]
    model = torch.compile(network) if mode.endswith("compile") and diffusion is None else network
    optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=1e-4)

    def loss() -> torch.Tensor:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            if diffusion is None:
                return (model(coarse, static) - truth).abs().mean()
            _, condition = diffusion.condition(coarse, static)
            sigma = torch.exp(-0.5 + 1.2 * torch.randn(batch, device=device))
            denoised = diffusion.denoise(truth + sigma[:, None, None, None] * torch.randn_like(truth), sigma, condition)
            return ((denoised - truth) ** 2).mean()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    @torch.no_grad()
    def sample() -> torch.Tensor:
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            return model(coarse, static) if diffusion is None else diffusion.sample(coarse, static, steps=steps)

    step_seconds = timed(train_step, 10)
    sample_seconds = timed(sample, 3 if diffusion is not None else 10)
    work = flops(train_step) / step_seconds
    rate = "" if peaks is None else f", {work / 1e12 / peaks[0 if dtype is None else 1]:.1%} of peak"
    return (
        f"{architecture:<19}{mode:<14}train {batch / step_seconds:8.1f} samples/s ({work / 1e12:.1f} TFLOP/s{rate}); "
        f"sampling {sample_seconds / batch * 1e3:8.2f} ms per member"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=18, help="sampler steps of the diffusion model")
    parser.add_argument("--peak-tflops", help="FP32,BF16 dense peak TFLOP/s, for a GPU not in the table")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: benchmarks/gpu.py measures GPUs only; nothing to do")
        return
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peaks = peak(name, args.peak_tflops)
    print(f"{name}; {FINE} x {FINE} fine cells (x{SCALE}), batch {args.batch}; peaks {peaks} TFLOP/s (fp32, bf16)")
    coarse = torch.randn(args.batch, 1, FINE // SCALE, FINE // SCALE, device=device)
    static = torch.randn(args.batch, 2, FINE, FINE, device=device)
    truth = torch.randn(args.batch, 1, FINE, FINE, device=device)
    for architecture, params in (("resnet_spc", {}), ("residual_diffusion", GPU_DIFFUSION)):
        for mode in ("fp32", "bf16", "bf16+compile"):
            print(measure(architecture, params, mode, (coarse, static, truth), args.steps, peaks))


if __name__ == "__main__":
    main()
