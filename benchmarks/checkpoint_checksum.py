"""What the checkpoint checksum costs: time to save and to load a checkpoint, with the SHA-256 of its contents.

Untrained resnet_spc networks of growing size (x4, one input, two static
fields on a 128 x 128 fine grid) are saved with ``save_checkpoint`` (which
computes the checksum) and read back with ``read_checkpoint`` (which verifies
it and checks every weight is finite); the checksum alone is timed too, and
the share of the load it takes is printed.

    python benchmarks/checkpoint_checksum.py [--quick] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from machine import describe

from dl4ds.data import Normalizer, PerfectProg
from dl4ds.model import DownscalingModel, read_checkpoint, save_checkpoint
from dl4ds.model.checkpoint import checksum

SIZES = {"quick": [(16, 2), (64, 8)], "full": [(16, 2), (64, 12), (128, 16), (256, 16)]}  # (filters, blocks)


def _pairs():
    rng = np.random.default_rng(0)
    coords = {
        "time": pd.date_range("2000-01-01", periods=4),
        "lat": 40 + 0.1 * np.arange(128),
        "lon": 0.1 * np.arange(128),
    }
    target = xr.DataArray(
        rng.standard_normal((4, 128, 128)).astype(np.float32), dims=("time", "lat", "lon"), coords=coords
    )
    static = xr.Dataset(
        {name: (("lat", "lon"), rng.standard_normal((128, 128))) for name in ("elevation", "land_fraction")},
        coords={"lat": coords["lat"], "lon": coords["lon"]},
    )
    return PerfectProg(scale=4).pair(target.rename("t2m").assign_attrs(units="K"), static=static)


def _best(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small networks only")
    parser.add_argument("--repeats", type=int, default=5, help="timings per figure; the fastest is printed")
    args = parser.parse_args()
    print(describe())
    pairs = _pairs()
    normalizer = Normalizer.fit(pairs)
    print(f"{'parameters':>12} {'file MB':>8} {'save s':>8} {'load s':>8} {'checksum s':>11} {'of load':>8}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        for filters, blocks in SIZES["quick" if args.quick else "full"]:
            torch.manual_seed(0)
            model = DownscalingModel.build(
                "resnet_spc", pairs, normalizer, params={"n_filters": filters, "n_blocks": blocks}
            )
            parameters = sum(p.numel() for p in model.parameters())
            save = _best(lambda model=model: save_checkpoint(path, model), args.repeats)
            load = _best(lambda: read_checkpoint(path), args.repeats)
            payload = read_checkpoint(path)
            digest = _best(lambda payload=payload: checksum(payload), args.repeats)
            megabytes = path.stat().st_size / 1e6
            print(
                f"{parameters:>12,d} {megabytes:>8.1f} {save:>8.3f} {load:>8.3f} {digest:>11.3f} {digest / load:>8.0%}"
            )


if __name__ == "__main__":
    main()
