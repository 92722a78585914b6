"""Training throughput of a registered network on random data.

Times full training steps (forward, MAE loss, backward, Adam step) after a
warm-up, on random normalised samples of the given fine-grid size, and prints
the parameter count and samples per second. Example (2-core CPU)::

    python benchmarks/training_throughput.py --batch-size 16 --height 32 --width 48 --scale 4 --steps 50
"""

from __future__ import annotations

import argparse
import time

import torch

from dl4ds import networks


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_spc", help="registered architecture (default resnet_spc)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--height", type=int, default=32, help="fine-grid rows (a multiple of --scale)")
    parser.add_argument("--width", type=int, default=48, help="fine-grid columns (a multiple of --scale)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--out-channels", type=int, default=1)
    parser.add_argument("--static-channels", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of --steps; the best is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--channels-last", action="store_true", help="use the channels_last memory format")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.height % args.scale or args.width % args.scale:
        parser.error(f"--height {args.height} and --width {args.width} must be multiples of --scale {args.scale}")
    return args


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    network = networks.create(
        args.model,
        scale=args.scale,
        in_channels=args.in_channels,
        out_channels=args.out_channels,
        static_channels=args.static_channels,
    ).to(device, memory_format=memory_format)
    n_parameters = sum(p.numel() for p in network.parameters())
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)

    h, w = args.height // args.scale, args.width // args.scale
    x = torch.randn(args.batch_size, args.in_channels, h, w, device=device).contiguous(memory_format=memory_format)
    y = torch.randn(args.batch_size, args.out_channels, args.height, args.width, device=device)
    static = None
    if args.static_channels:
        static = torch.randn(args.batch_size, args.static_channels, args.height, args.width, device=device)
        static = static.contiguous(memory_format=memory_format)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(network(x, static), y)
        loss.backward()
        optimizer.step()

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    synchronize()
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize()
        rates.append(args.steps * args.batch_size / (time.perf_counter() - start))

    print(
        f"model           {args.model} (x{args.scale}, in {args.in_channels}, out {args.out_channels}, static {args.static_channels})"
    )
    print(f"parameters      {n_parameters:,d}")
    print(f"samples         batch {args.batch_size}, fine {args.height}x{args.width}, coarse {h}x{w}")
    print(
        f"device          {device}, {torch.get_num_threads()} threads, {'channels_last' if args.channels_last else 'contiguous'}"
    )
    print(
        f"throughput      {max(rates):.1f} samples/s (best of {args.repeats} x {args.steps} steps; all: {', '.join(f'{r:.1f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
