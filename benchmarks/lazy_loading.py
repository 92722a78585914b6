"""Lazy data loading from a Zarr store larger than memory, against the training throughput it must feed.

Writes a synthetic hourly 2 m temperature archive on a global 0.25 degree grid
(720 x 1440 cells, float32, chunks of 24 steps x 120 x 120 cells, about 1.4 MB)
of about ``--gigabytes`` GB to a Zarr store, then in a fresh process:

1. fits the normalizer lazily (``fit_lazy_normalizer``: one pass of dask
   reductions over the store);
2. iterates ``LazyPatchDataset`` (scale 4, ``--patch`` x ``--patch`` fine
   cells, two synthetic static fields) through a DataLoader with ``--workers``
   workers for ``--batches`` batches of ``--batch-size`` samples, and reports
   samples/s (after the first batch, which includes starting the workers);
3. times training steps of a resnet_spc (weighted MAE, Adam, channels-last)
   on a batch of the same shape, in samples/s (the best of 3 runs of
   ``--train-steps`` steps after 5 untimed ones), and prints the ratio of the two;
4. trains on ``--end-to-end`` batches straight from the loader, workers and
   network sharing the CPU, as a trainer would.

Peak memory is reported as the child's own peak resident set
(``RUSAGE_SELF``), its largest worker's (``RUSAGE_CHILDREN``), and the peak
proportional set size of the whole process tree (sampled from
``/proc/*/smaps_rollup`` every 0.2 s; pages shared by the forked workers count
once), which is what a 1 GiB memory limit (cgroup, container) would meet.
Targets: loading at least 2x the training throughput, at most 1 GiB.
To enforce the limit instead of measuring it, run the whole command under
e.g. ``systemd-run --user --scope -p MemoryMax=1G`` or ``docker run --memory 1g``.

    python benchmarks/lazy_loading.py [--gigabytes 4] [--workers 2] [--batch-size 16] [--patch 64]
        [--batches 200] [--patches-per-read 16] [--train-steps 10] [--end-to-end 20] [--workdir DIR]

A quick check: ``python benchmarks/lazy_loading.py --gigabytes 0.2 --batches 50``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from itertools import count
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import torch
import xarray as xr
from machine import describe
from torch.utils.data import DataLoader

SCALE = 4
NY, NX = 720, 1440
CHUNKS = (24, 120, 120)
GIB = 2**30


# --------------------------------------------------------------------- synthetic data


def synthetic_archive(steps: int, seed: int = 0) -> xr.Dataset:
    """Hourly t2m (time, latitude, longitude) in K, global 0.25 degree, dask-backed and generated chunk by chunk.

    A latitude profile, a seasonal and a diurnal cycle, three travelling waves
    and 0.3 K of white noise (so the store compresses about as badly as real data).
    """
    lat = -89.875 + 0.25 * np.arange(NY)
    lon = -179.875 + 0.25 * np.arange(NX)
    hours = np.arange(steps, dtype=np.float64)
    waves = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(3, 4))  # phase, and wave numbers below

    def chunk(block: np.ndarray, block_info: dict) -> np.ndarray:
        (t0, t1), (y0, y1), (x0, x1) = block_info[0]["array-location"]
        t = hours[t0:t1, None, None]
        phi = np.deg2rad(lat[y0:y1])[None, :, None]
        lam = np.deg2rad(lon[x0:x1])[None, None, :]
        field = 300.0 - 50.0 * np.sin(phi) ** 2 - 12.0 * np.sin(phi) * np.cos(2 * np.pi * t / 8766.0)
        field = field + 4.0 * np.cos(2 * np.pi * t / 24.0 + lam - np.pi) * np.cos(phi)
        for k, (phase, a, b, c) in enumerate(waves, start=1):
            field = field + 3.0 * np.sin((k + a) * 2 * lam + (k + b) * 3 * phi - (0.05 + 0.02 * c) * t + phase)
        noise = np.random.default_rng((seed, t0, y0, x0)).normal(0.0, 0.3, block.shape)
        return (field + noise).astype(np.float32)

    template = da.zeros((steps, NY, NX), chunks=CHUNKS, dtype=np.float32)
    data = template.map_blocks(chunk, dtype=np.float32)
    attrs = {"units": "K", "standard_name": "air_temperature", "long_name": "2 metre temperature"}
    return xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), data, attrs)},
        coords={"time": pd.date_range("2019-01-01", periods=steps, freq="h"), "latitude": lat, "longitude": lon},
    )


def synthetic_static(grid: xr.Dataset) -> xr.Dataset:
    """Elevation (m) and land fraction (1) on the grid of ``grid``, smooth and in memory."""
    phi = np.deg2rad(grid["latitude"].values)[:, None]
    lam = np.deg2rad(grid["longitude"].values)[None, :]
    relief = np.sin(3 * lam) * np.cos(2 * phi) + 0.5 * np.sin(7 * lam + 5 * phi)
    dims = ("latitude", "longitude")
    return xr.Dataset(
        {
            "elevation": (dims, (np.clip(relief, 0, None) * 2000.0).astype(np.float32), {"units": "m"}),
            "land_fraction": (dims, (relief > 0).astype(np.float32), {"units": "1"}),
        },
        coords={"latitude": grid["latitude"], "longitude": grid["longitude"]},
    )


def write_store(path: Path, gigabytes: float) -> int:
    """Write the synthetic archive of about ``gigabytes`` GB (float32, uncompressed) to ``path``; returns the steps."""
    steps = max(CHUNKS[0], round(gigabytes * 1e9 / (NY * NX * 4)))
    synthetic_archive(steps).to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    return steps


# --------------------------------------------------------------------- measuring, in the child


class TreeMemory:
    """Peak proportional set size (bytes) of this process and its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_pss(pid) for pid in _tree(str(os.getpid()))))
            self._stop.wait(interval)


def _tree(pid: str) -> list[str]:
    try:
        children = [c for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except OSError:
        return [pid]
    return [pid, *(p for child in children for p in _tree(child))]


def _pss(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _peaks() -> dict[str, float]:
    """Peak resident memory in GiB of this process and of its largest reaped child."""
    return {
        "self_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "workers_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20,
    }


def _batches(dataset, loader: DataLoader):
    """Batches from ``loader`` without end, over successive epochs."""
    for epoch in count():
        dataset.set_epoch(epoch)
        yield from loader


def measure(args: argparse.Namespace) -> dict:
    """Fit, load and train as the module docstring says; returns the figures."""
    from dl4ds import networks
    from dl4ds.data.lazy import LazyPatchDataset, fit_lazy_normalizer

    results: dict = {}
    with TreeMemory() as tree:
        ds = xr.open_zarr(args.child)
        static = synthetic_static(ds)
        start = time.perf_counter()
        normalizer = fit_lazy_normalizer(ds, scale=SCALE, static=static)
        results["fit_s"] = time.perf_counter() - start
        results["fit_tree_gib"] = tree.peak / GIB
        results["fit"] = _peaks()

        dataset = LazyPatchDataset(
            ds,
            normalizer,
            scale=SCALE,
            patch_size=args.patch,
            static=static,
            patches_per_read=args.patches_per_read,
            seed=0,
        )
        results["blocks"] = len(dataset.blocks)
        block = dataset.blocks[0]
        cells = (
            (block.time.stop - block.time.start)
            * (block.rows.stop - block.rows.start)
            * (block.cols.stop - block.cols.start)
        )
        results["block_mb"] = cells * 4 / 1e6
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
        batches = _batches(dataset, loader)
        start = time.perf_counter()
        batch = next(batches)
        results["first_batch_s"] = time.perf_counter() - start
        start = time.perf_counter()
        samples = 0
        for _ in range(args.batches - 1):
            batch = next(batches)
            samples += len(batch["x"])
        results["loading_samples_per_s"] = samples / (time.perf_counter() - start)
        batches.close()  # shuts the workers down

        torch.manual_seed(0)
        network = networks.create("resnet_spc", scale=SCALE, in_channels=1, out_channels=1, static_channels=2)
        network = network.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)

        def step(sample: dict) -> None:
            x = sample["x"].contiguous(memory_format=torch.channels_last)
            static_fields = sample["static"].contiguous(memory_format=torch.channels_last)
            prediction = network(x, static_fields, sample["offset"])
            loss = ((prediction - sample["y"]).abs() * sample["weight"]).sum() / sample["weight"].sum().clamp(min=1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(5):  # the first steps set up the kernels and the optimiser's state
            step(batch)
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(args.train_steps):
                step(batch)
            rates.append(args.train_steps * args.batch_size / (time.perf_counter() - start))
        results["training_samples_per_s"] = max(rates)

        if args.end_to_end:
            batches = _batches(dataset, loader)
            step(next(batches))
            start = time.perf_counter()
            for _ in range(args.end_to_end):
                step(next(batches))
            results["end_to_end_samples_per_s"] = args.end_to_end * args.batch_size / (time.perf_counter() - start)
            batches.close()
    results["tree_gib"] = tree.peak / GIB
    results["end"] = _peaks()
    return results


# --------------------------------------------------------------------- the parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=4.0, help="size of the store, uncompressed (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64, help="patch height and width in fine cells (multiple of 4)")
    parser.add_argument("--batches", type=int, default=200, help="batches loaded (default 200)")
    parser.add_argument("--patches-per-read", type=int, default=16, help="samples cut from each block read")
    parser.add_argument("--train-steps", type=int, default=10, help="training steps per timed run (default 10)")
    parser.add_argument("--end-to-end", type=int, default=20, help="training steps fed by the loader; 0 skips them")
    parser.add_argument("--workdir", type=Path, help="write (or reuse) the store here (default: a temporary directory)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    print(describe())
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        store = workdir / f"t2m_{args.gigabytes:g}GB.zarr"
        start = time.perf_counter()
        if store.exists():
            print(f"reusing {store}")
        else:
            write_store(store, args.gigabytes)
        steps = xr.open_zarr(store).sizes["time"]
        disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(
            f"store: {steps} x {NY} x {NX} float32 = {steps * NY * NX * 4 / 1e9:.2f} GB "
            f"({disk / 1e9:.2f} GB on disk, chunks {CHUNKS}), ready in {time.perf_counter() - start:.1f} s"
        )
        command = [sys.executable, __file__, "--child", str(store)] + [
            f"--{name}={value}"
            for name, value in (
                ("workers", args.workers),
                ("batch-size", args.batch_size),
                ("patch", args.patch),
                ("batches", args.batches),
                ("patches-per-read", args.patches_per_read),
                ("train-steps", args.train_steps),
                ("end-to-end", args.end_to_end),
            )
        ]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    r = json.loads(output.strip().splitlines()[-1])
    ratio = r["loading_samples_per_s"] / r["training_samples_per_s"]
    print(
        f"normalizer fit: {r['fit_s']:.1f} s, peak {r['fit']['self_gib']:.2f} GiB resident, "
        f"{r['fit_tree_gib']:.2f} GiB process tree"
    )
    print(
        f"blocks: {r['blocks']} of {r['block_mb']:.1f} MB, {args.patches_per_read} patches of "
        f"{args.patch} x {args.patch} each"
    )
    print(
        f"loading ({args.workers} workers): {r['loading_samples_per_s']:.0f} samples/s "
        f"(first batch after {r['first_batch_s']:.2f} s)"
    )
    print(f"training (resnet_spc, batch {args.batch_size}): {r['training_samples_per_s']:.1f} samples/s")
    print(f"loading / training: {ratio:.1f}x (target >= 2x)")
    if args.end_to_end:
        print(f"training fed by the loader: {r['end_to_end_samples_per_s']:.1f} samples/s")
    print(
        f"peak memory: process {r['end']['self_gib']:.2f} GiB, largest worker {r['end']['workers_gib']:.2f} GiB "
        f"resident; process tree {r['tree_gib']:.2f} GiB proportional (target 1 GiB)"
    )


if __name__ == "__main__":
    main()
