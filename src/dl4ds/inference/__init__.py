"""Inference: applying trained models to coarse data."""

from dl4ds.inference.downscale import downscale

__all__ = ["downscale"]
