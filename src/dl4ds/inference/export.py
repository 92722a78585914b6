"""Export of a trained network to ONNX, checked against ONNX Runtime.

:func:`export_onnx` writes the network of a :class:`~dl4ds.model.DownscalingModel`
as an ONNX graph that computes exactly ``model(coarse, static, offset)``: it
maps *normalised* coarse inputs to *normalised* fine fields. Everything needed
to normalise and denormalise travels in the same file, so the graph can be
run without dl4ds (ONNX Runtime, or any other ONNX engine).

Graph inputs, in this order (float32 unless noted; ``B``, ``h`` and ``w`` are
dynamic, ``s`` is ``metadata.scale``)::

    coarse  (B, C, h, w), or (B, T, C, h, w) with T = metadata.time_window for
            a spatio-temporal model: the channels of metadata.input_variables,
            normalised as (x - mean) / std with normalizer.inputs, NaN -> 0.
    static  (B, S, h*s, w*s), only for a model with static fields: the window of
            the fine static fields (metadata.static_variables) matching coarse,
            normalised with normalizer.static, NaN -> 0.
    offset  (B, 2) int64, only for a model with localized layers: the fine-grid
            row and column of each sample's first cell in the training grid
            (0, 0 for the whole domain). The window must lie inside the grid;
            the graph does not check it.

Graph output::

    fine    (B, V, h*s, w*s), or (B, T, V, h*s, w*s): the target variables
            (metadata.target_variables), normalised; x * std + mean with
            normalizer.target gives physical units.

A model with static fields or localized layers (``model.capabilities.domain_bound``)
applies to its training grid or a window of it only. Cells that had no truth
in training are not masked by the graph (``dl4ds.downscale`` sets them to NaN).

The ONNX model's ``metadata_props`` hold two string entries:

- ``dl4ds_metadata``: JSON of :meth:`dl4ds.model.ModelMetadata.to_dict`, with
  keys ``architecture``, ``architecture_params``, ``scale``,
  ``target_variables``, ``input_variables``, ``static_variables``,
  ``attrs`` (CF attributes such as ``units`` per variable), ``fine_grid``
  (``{"lat": [...], "lon": [...]}``, cell centres in degrees, ascending; the
  coarse grid is the mean of each ``scale`` x ``scale`` block), ``normalizer``
  (``{"target" | "inputs" | "static": {"names": [...], "mean": [...], "std": [...]}}``,
  physical units, ``static`` null without static fields), ``config`` (the
  training run's configuration) and ``time_window`` (null for a spatial model).
  ``ModelMetadata.from_dict(json.loads(...))`` rebuilds it.
- ``dl4ds_version``: the dl4ds version that wrote the file.

Stochastic models (noise injection, Monte-Carlo dropout) are not exported:
ONNX Runtime would draw its own random numbers, so the graph could be neither
checked nor reproduced.

The graph is written by PyTorch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``): the ``torch.export``-based one
cannot trace the bounds check of localized layers (a data-dependent branch)
and is tens of times slower on these networks. The tracer records the branch
each ``if`` takes, so the graph is traced on odd grid sizes, where U-Net
backbones take their padding branch (whose pad amounts the graph then computes
from the input size, zero where none is needed), and the check runs ONNX
Runtime on other grid and batch sizes than the traced ones.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from dl4ds._version import __version__
from dl4ds.errors import ConfigError
from dl4ds.model import DownscalingModel, ModelMetadata
from dl4ds.utils.atomic import atomic_path

DEFAULT_OPSET = 17
"""ONNX opset written by default, widely supported (ONNX Runtime 1.13 and later)."""
MIN_OPSET = 11
"""Bicubic resizing and sub-pixel (depth-to-space) layers need opset 11."""
MAX_OPSET = 20
"""The highest opset PyTorch's TorchScript-based exporter writes."""

METADATA_KEY = "dl4ds_metadata"
VERSION_KEY = "dl4ds_version"
OUTPUT_NAME = "fine"

# Nodes that draw random numbers: none of them may appear in an exported graph.
_RANDOM_OPS = frozenset(
    {"Bernoulli", "Dropout", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"}
)
_STOCHASTIC_HINT = (
    "ONNX Runtime draws its own random numbers, so the exported graph could not be checked against the torch model "
    "and its samples could not be reproduced. Downscale with dl4ds instead (dl4ds downscale --samples N --seed S), "
    "or export a deterministic model (noise_channels=0, mc_dropout=False)"
)

Window = tuple[slice, slice]


@dataclasses.dataclass(frozen=True)
class OnnxExport:
    """The ONNX file written by :func:`export_onnx` and how closely ONNX Runtime reproduces the torch model.

    Attributes:
        path: the ONNX file.
        input_names: the graph inputs in order: ``"coarse"``, then ``"static"``
            and ``"offset"`` when the model takes them.
        output_name: the graph output, ``"fine"``.
        opset: the ONNX opset of the graph.
        max_abs_diff: the largest |ONNX Runtime - torch| over every checked
            input, in normalised units; None when the check was skipped.
        max_abs_diff_physical: the same per target variable in its physical
            units (``attrs[name]["units"]``): the normalised difference times
            the variable's training standard deviation; None when unchecked.
        checked_shapes: the shapes of the ``coarse`` inputs the check ran on,
            e.g. the training domain and a smaller window; empty when unchecked.
    """

    path: Path
    input_names: tuple[str, ...]
    output_name: str
    opset: int
    max_abs_diff: float | None
    max_abs_diff_physical: Mapping[str, float] | None
    checked_shapes: tuple[tuple[int, ...], ...]


def export_onnx(
    model: DownscalingModel,
    path: str | os.PathLike[str],
    *,
    opset: int | None = None,
    check: bool = True,
    tolerance: float = 1e-4,
) -> OnnxExport:
    """Write ``model``'s network as an ONNX graph with its metadata, after checking it with ONNX Runtime.

    The graph maps normalised inputs to normalised outputs like
    ``model(coarse, static, offset)``; the module docstring describes its
    inputs, output and stored metadata. With ``check``, ONNX Runtime (CPU)
    and torch run the same random normalised inputs (with the model's own
    static fields) on the whole training domain and on two smaller windows
    away from its corner of origin, at other batch sizes and grid sizes than
    the traced ones, and the file is moved to ``path`` only when they agree. The file is written atomically:
    on any error ``path`` keeps its previous content, if any. ``model`` is
    not modified (a copy is exported on the CPU in evaluation mode).

    Args:
        model: a deterministic trained model.
        path: the ONNX file to write, e.g. ``"model.onnx"``.
        opset: ONNX opset version, from 11 to 20; None for ``DEFAULT_OPSET`` (17).
        check: compare ONNX Runtime with torch before writing ``path``.
        tolerance: the largest |ONNX Runtime - torch| accepted, in normalised
            units (standard deviations of each target variable).

    Returns:
        The written file's inputs, opset and measured differences.

    Raises:
        ConfigError: onnx or onnxruntime is not installed, the model is
            stochastic or a diffusion model, the opset or tolerance is invalid, the network cannot
            be exported, or ONNX Runtime fails or differs from torch by more
            than ``tolerance``.
    """
    metadata = model.metadata
    name = metadata.architecture
    if model.capabilities.iterative:
        raise ConfigError(
            f"model {name!r} is a diffusion model: a sample takes 2 * steps - 1 denoiser evaluations with noise drawn "
            "by dl4ds, which an ONNX graph of one pass cannot reproduce. Downscale it with dl4ds (dl4ds downscale "
            "--samples N --seed S --steps K), or export its deterministic stage 1 (checkpoints/stage1/best.pt of "
            "the training run)"
        )
    if model.capabilities.stochastic:
        raise ConfigError(
            f"model {name!r} is stochastic (it injects noise or keeps dropout on at inference) and cannot be exported "
            f"to ONNX: {_STOCHASTIC_HINT}"
        )
    opset = DEFAULT_OPSET if opset is None else opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(
            f"ONNX opset {opset} is not supported; choose an opset from {MIN_OPSET} to {MAX_OPSET} (default {DEFAULT_OPSET})"
        )
    if not tolerance >= 0:
        raise ConfigError(f"tolerance={tolerance!r} must be >= 0, e.g. 1e-4 (normalised units)")
    onnx, onnxruntime = _import_onnx(check)

    model = copy.deepcopy(model).cpu()
    takes_offset = model.capabilities.takes_offset
    # The exporter restores the wrapper's mode, recursively, after tracing: the wrapper must be in eval mode too.
    graph = _Graph(model, takes_offset).eval()
    input_names = (
        ("coarse",) + (("static",) if model.capabilities.takes_static else ()) + (("offset",) if takes_offset else ())
    )
    trace_window, check_windows = _windows(metadata.coarse_grid.shape)
    generator = torch.Generator().manual_seed(0)
    path = Path(path)
    with atomic_path(path) as temporary:
        _trace(graph, _sample_inputs(graph, 2, trace_window, generator), temporary, input_names, opset)
        proto = onnx.load(str(temporary))
        random_ops = sorted({node.op_type for node in proto.graph.node} & _RANDOM_OPS)
        if random_ops:
            raise ConfigError(
                f"the ONNX graph of model {name!r} draws random numbers ({', '.join(random_ops)}), so it is not "
                f"exported: {_STOCHASTIC_HINT}"
            )
        onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata.to_dict()), VERSION_KEY: __version__})
        onnx.checker.check_model(proto)
        onnx.save(proto, str(temporary))
        result = OnnxExport(path, input_names, OUTPUT_NAME, opset, None, None, ())
        if check:
            assert onnxruntime is not None, "_import_onnx(check) imports onnxruntime when check is set"
            differences, shapes = _compare(graph, temporary, check_windows, generator, onnxruntime)
            stats = metadata.normalizer.target
            physical = {str(variable): float(d) for variable, d in zip(stats.names, differences * stats.std)}
            _check_tolerance(float(differences.max()), physical, tolerance, metadata, path)
            result = dataclasses.replace(
                result, max_abs_diff=float(differences.max()), max_abs_diff_physical=physical, checked_shapes=shapes
            )
    return result


class _Graph(nn.Module):
    """``model(coarse, static, offset)`` with only the inputs the model takes, in the graph's input order."""

    def __init__(self, model: DownscalingModel, takes_offset: bool) -> None:
        super().__init__()
        self.model = model
        self.takes_offset = takes_offset

    def forward(self, coarse: torch.Tensor, *optional: torch.Tensor) -> torch.Tensor:
        inputs = iter(optional)
        static = next(inputs) if self.model.capabilities.takes_static else None
        offset = next(inputs) if self.takes_offset else None
        return self.model(coarse, static, offset)


def _import_onnx(runtime: bool) -> tuple[ModuleType, ModuleType | None]:
    """The onnx package, and onnxruntime when ``runtime``; ConfigError with the install command if missing."""
    try:
        import onnx

        if runtime:
            import onnxruntime
    except ImportError as error:
        raise ConfigError(
            f"exporting to ONNX needs the optional packages onnx and onnxruntime, but {error.name or 'one'} is not "
            'installed; install them with: pip install "dl4ds[onnx]"'
        ) from None
    return onnx, onnxruntime if runtime else None


def _windows(shape: tuple[int, int]) -> tuple[Window, list[tuple[int, Window]]]:
    """Coarse windows of the training grid: one to trace, and (batch size, window) pairs to check.

    The traced window has odd sizes, so U-Net backbones record their padding
    branch. The checks run the whole domain, a window of odd sizes at its far
    corner and one of even sizes in its middle, so that sizes with and without
    padding, and offsets other than zero, are compared.
    """
    height, width = shape
    trace = (slice(0, _odd(height)), slice(0, _odd(width)))
    odd_height, odd_width = _odd((height + 1) // 2), _odd((width + 1) // 2)
    even_height, even_width = max(2 * (height // 4), 1), max(2 * (width // 4), 1)
    top, left = (height - even_height) // 2, (width - even_width) // 2
    return trace, [
        (3, (slice(0, height), slice(0, width))),
        (1, (slice(height - odd_height, height), slice(width - odd_width, width))),
        (2, (slice(top, top + even_height), slice(left, left + even_width))),
    ]


def _odd(size: int) -> int:
    """The largest odd number <= ``size`` (>= 1)."""
    return size - 1 + size % 2


def _sample_inputs(graph: _Graph, batch: int, window: Window, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random normalised coarse inputs on ``window``, with the matching static fields and offsets."""
    model = graph.model
    metadata = model.metadata
    rows, cols = window
    scale = metadata.scale
    shape: tuple[int, ...] = (len(metadata.input_variables), rows.stop - rows.start, cols.stop - cols.start)
    if model.capabilities.temporal:
        assert metadata.time_window is not None, "a spatio-temporal model has a time window"
        shape = (metadata.time_window, *shape)
    inputs = [torch.randn(batch, *shape, generator=generator)]
    if model.capabilities.takes_static:
        static = model.static[:, rows.start * scale : rows.stop * scale, cols.start * scale : cols.stop * scale]
        inputs.append(static.unsqueeze(0).expand(batch, -1, -1, -1).contiguous())
    if graph.takes_offset:
        inputs.append(torch.tensor([[rows.start * scale, cols.start * scale]] * batch, dtype=torch.int64))
    return tuple(inputs)


def _trace(
    graph: _Graph, inputs: tuple[torch.Tensor, ...], path: Path, input_names: tuple[str, ...], opset: int
) -> None:
    """Export ``graph`` traced on ``inputs`` to ``path``, with dynamic batch and grid sizes."""
    ndim = inputs[0].ndim  # of coarse and fine alike
    dynamic_axes = {
        "coarse": {0: "batch", ndim - 2: "coarse_height", ndim - 1: "coarse_width"},
        "static": {0: "batch", 2: "height", 3: "width"},
        "offset": {0: "batch"},
        OUTPUT_NAME: {0: "batch", ndim - 2: "height", ndim - 1: "width"},
    }
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The legacy exporter is deprecated, and the tracer warns about the
            # shape checks it freezes; the comparison with ONNX Runtime on other
            # sizes is what tells whether the trace generalises. The indexing of
            # localized layers by offset is exact for windows inside the grid
            # (the module docstring says so) and wrong for negative offsets.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)
            torch.onnx.export(
                graph,
                inputs,
                str(path),
                input_names=list(input_names),
                output_names=[OUTPUT_NAME],
                dynamic_axes={key: axes for key, axes in dynamic_axes.items() if key in (*input_names, OUTPUT_NAME)},
                opset_version=opset,
                dynamo=False,
            )
    except Exception as error:  # the exporter raises many types (RuntimeError, OnnxExporterError, ...)
        architecture = graph.model.metadata.architecture
        reason = f"{type(error).__name__}: {next(iter(str(error).splitlines()), '')}"
        raise ConfigError(
            f"model {architecture!r} cannot be exported to ONNX opset {opset} ({reason}); try another opset, "
            "or downscale with dl4ds"
        ) from None


def _compare(
    graph: _Graph,
    path: Path,
    windows: list[tuple[int, Window]],
    generator: torch.Generator,
    onnxruntime: ModuleType,
) -> tuple[np.ndarray, tuple[tuple[int, ...], ...]]:
    """Run ONNX Runtime and torch on the same inputs: the largest |difference| per target variable, and the coarse shapes."""
    architecture = graph.model.metadata.architecture
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors are raised below; keep ONNX Runtime from also logging them
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise ConfigError(f"ONNX Runtime cannot load the ONNX graph of model {architecture!r}: {error}") from None
    worst = np.zeros(len(graph.model.metadata.target_variables))
    shapes = []
    for batch, window in windows:
        inputs = _sample_inputs(graph, batch, window, generator)
        with torch.no_grad():
            expected = graph(*inputs).numpy()
        feed = {node.name: tensor.numpy() for node, tensor in zip(session.get_inputs(), inputs)}
        try:
            (actual,) = session.run([OUTPUT_NAME], feed)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ConfigError(
                f"ONNX Runtime cannot run the ONNX graph of model {architecture!r} on coarse inputs of shape "
                f"{tuple(inputs[0].shape)} ({error}); the network does not export faithfully, downscale with dl4ds"
            ) from None
        if actual.shape != expected.shape:
            raise ConfigError(
                f"the ONNX graph of model {architecture!r} returns shape {actual.shape} instead of {expected.shape} "
                f"for coarse inputs of shape {tuple(inputs[0].shape)}; the network does not export faithfully, "
                "downscale with dl4ds"
            )
        worst = np.maximum(worst, _channel_max_abs_diff(actual, expected))
        shapes.append(tuple(inputs[0].shape))
    return worst, tuple(shapes)


def _channel_max_abs_diff(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Largest |actual - expected| per variable (axis -3), counting NaN in one only as infinite."""
    difference = np.abs(actual.astype(np.float64) - expected)
    difference[np.isnan(actual) & np.isnan(expected)] = 0.0
    difference = np.nan_to_num(difference, nan=np.inf)
    return np.moveaxis(difference, -3, 0).reshape(difference.shape[-3], -1).max(axis=1)


def _check_tolerance(
    largest: float,
    physical: Mapping[str, float],
    tolerance: float,
    metadata: ModelMetadata,
    path: Path,
) -> None:
    """ConfigError naming the differences (normalised, and ``physical`` per variable) when ``largest`` exceeds ``tolerance``."""
    if largest <= tolerance:
        return
    per_variable = ", ".join(
        f"{name} {difference:.3g} {metadata.attrs.get(name, {}).get('units', '')}".rstrip()
        for name, difference in physical.items()
    )
    raise ConfigError(
        f"the ONNX graph of model {metadata.architecture!r} does not reproduce the torch model: ONNX Runtime differs by "
        f"up to {largest:.3g} in normalised units ({per_variable}), more than the tolerance {tolerance:g}, so "
        f"nothing was written to {str(path)!r}. Downscale with dl4ds, or export with check=False (dl4ds export --no-check) "
        "at your own risk"
    )
