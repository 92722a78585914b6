"""What the benchmarks ran on, for their printed figures."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what the platform reports elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """E.g. 'AMD EPYC, 2 threads, PyTorch 2.13.0+cpu, Python 3.11.7'."""
    return f"{cpu_model()}, {torch.get_num_threads()} threads, PyTorch {torch.__version__}, Python {platform.python_version()}"
