"""Inference: applying trained models to coarse data of any size (tiled, streamed), and ONNX export."""

from dl4ds.inference.downscale import Downscaler, downscale
from dl4ds.inference.export import OnnxExport, export_onnx

__all__ = ["Downscaler", "OnnxExport", "downscale", "export_onnx"]
