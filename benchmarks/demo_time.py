"""Wall time and test scores of `dl4ds demo` (target: <= 300 s on 2 CPU cores, RMSE >= 40% below bicubic).

Runs the demo in a fresh process, as a user would, and prints the wall time, the
network's and bicubic interpolation's test scores, and the RMSE reduction::

    python benchmarks/demo_time.py [--output DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="demo output directory (default: a temporary one)")
    parser.add_argument("--epochs", type=int, help="override the demo's training epochs")
    args = parser.parse_args()
    output = Path(args.output or tempfile.mkdtemp(prefix="dl4ds-demo-"))
    command = [sys.executable, "-m", "dl4ds.cli", "--quiet", "demo", "--output", str(output)]
    if args.epochs:
        command += ["--epochs", str(args.epochs)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    metrics = json.loads((output / "metrics.json").read_text())
    network = next(name for name in metrics if name != "bicubic")
    print(f"demo wall time: {seconds:.1f} s (target <= 300 s)")
    for name, values in metrics.items():
        print(f"{name:12s} " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    reduction = 1 - metrics[network]["rmse"] / metrics["bicubic"]["rmse"]
    print(f"RMSE reduction vs bicubic: {100 * reduction:.1f}% (target >= 40%)")
    print(f"outputs: {output}")


if __name__ == "__main__":
    main()
