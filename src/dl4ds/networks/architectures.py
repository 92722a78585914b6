"""The downscaling networks: every backbone x upsampling, spatial and spatio-temporal, registered by name.

Names follow the reference design, ``[rec]BACKBONE_UPSAMPLING``:

- BACKBONE: ``convnet``, ``resnet``, ``densenet``, ``convnext``, ``unet``
  (see :mod:`dl4ds.networks.backbones`);
- UPSAMPLING: ``pin`` (interpolate the input to the fine grid, then run the
  backbone there), ``spc`` (sub-pixel convolution), ``rc`` (resize
  convolution) or ``dc`` (transposed convolution), the last three after a
  backbone on the coarse grid;
- ``rec``: spatio-temporal, a bidirectional ConvLSTM over a time window of
  coarse frames in front of the spatial network, which predicts every frame.

Every combination is built (40 networks). U-Net runs on coarse grids too: it
pads them to a multiple of ``2**depth`` and crops back, so post-upsampling
U-Nets work at every scale and grid size.

Every network takes ``noise_channels`` (default 0, deterministic). With
``noise_channels = n > 0`` it is a stochastic generator, for conditional
adversarial training and ensembles: n maps of standard normal noise join the
backbone's input (on the coarse grid, or on the fine grid for ``pin``), and n
fresh ones join the fine-resolution features in front of the output head (see
:class:`dl4ds.networks.blocks.NoiseInjection`). Noise is drawn in training and
evaluation mode alike from torch's global generator, so repeated predictions
differ and ``torch.manual_seed`` makes them repeatable.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from dl4ds.errors import ConfigError
from dl4ds.networks.backbones import BACKBONES
from dl4ds.networks.blocks import (
    OUTPUT_ACTIVATIONS,
    BlockOptions,
    FieldDropout,
    GlobalSkip,
    NoiseInjection,
    OutputActivation,
    OutputHead,
    StaticBranch,
    check_choice,
)
from dl4ds.networks.localized import LocalizedLinear
from dl4ds.networks.recurrent import ConvLSTM
from dl4ds.networks.registry import check_minimum, register_model
from dl4ds.networks.upsampling import UPSAMPLINGS, ResizeConvUpsampler, SubPixelUpsampler, TransposedConvUpsampler
from dl4ds.utils.interpolation import upsample

INTERPOLATIONS = ("bicubic", "bilinear", "nearest")

_UPSAMPLERS = {"spc": SubPixelUpsampler, "rc": ResizeConvUpsampler, "dc": TransposedConvUpsampler}

# Pre-upsampling networks run their backbone on the fine grid, scale**2 times
# more cells than the coarse grid, so they default to fewer filters and blocks.
_PIN_DEFAULTS: dict[str, dict[str, int]] = {
    "convnet": {"n_filters": 24, "n_blocks": 3},
    "resnet": {"n_filters": 24, "n_blocks": 2},
    "densenet": {"n_filters": 24, "n_blocks": 1, "growth_rate": 8},
    "convnext": {"n_filters": 24, "n_blocks": 2},
    "unet": {"n_filters": 16, "depth": 2},
}


class DownscalingNetwork(nn.Module):
    """A spatial downscaling network: (B, in_channels, h, w) coarse inputs -> (B, out_channels, H, W), H = h * scale.

    Layout:

    - ``pin``: the inputs are interpolated to the fine grid, the static
      fields concatenated, and the backbone runs on the fine grid;
    - ``spc``/``rc``/``dc``: the backbone runs on the coarse grid, the
      upsampler brings ``upsampled_filters`` feature maps to the fine grid, and
      the static branch's ``static_filters`` features are concatenated;
    - with ``noise_channels = n > 0`` (a stochastic generator), n maps of
      standard normal noise are concatenated to the backbone's input (after
      the interpolation and the static fields for ``pin``, on the coarse grid
      otherwise), and n fresh ones to the fine features in front of the output
      head and the localized layer; with n = 0 no noise is drawn;
    - an output head (conv-ReLU-conv) fuses the fine features into the outputs;
    - optionally a localized layer adds a per-grid-point linear map of the
      fine features, the interpolated coarse targets are added (global skip),
      and an output activation bounds the result.

    Build it through :func:`dl4ds.networks.create` with a registered name;
    ``dl4ds models NAME`` lists the parameters, :class:`BlockOptions` and the
    README explain them.
    """

    temporal = False

    def __init__(
        self,
        scale: int,
        in_channels: int,
        out_channels: int,
        static_channels: int,
        *,
        name: str,
        backbone: str,
        upsampling: str,
        backbone_params: Mapping[str, Any],
        options: BlockOptions,
        global_skip: bool,
        interpolation: str,
        output_activation: str | Sequence[str],
        localized: bool,
        localized_grid: Sequence[int] | None,
        static_filters: int = 16,
        upsampled_filters: int = 8,
        noise_channels: int = 0,
    ) -> None:
        super().__init__()
        check_choice(name, "interpolation", interpolation, INTERPOLATIONS)
        check_minimum(name, 0, noise_channels=noise_channels)
        check_minimum(
            name, 1, **{k: v for k, v in backbone_params.items() if k in ("n_filters", "growth_rate", "kernel_size")}
        )
        check_minimum(
            name, 0, **{k: v for k, v in backbone_params.items() if k in ("n_blocks", "depth", "layers_per_block")}
        )
        if backbone_params.get("kernel_size", 1) % 2 == 0:
            raise ConfigError(
                f"parameter kernel_size={backbone_params['kernel_size']} of model {name!r} must be odd (e.g. 7) to keep the grid size"
            )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.static_channels = static_channels
        self.upsampling = upsampling
        self.interpolation = interpolation

        self.input_noise = NoiseInjection(noise_channels)
        if upsampling == "pin":
            backbone_inputs = in_channels + static_channels + noise_channels
            self.backbone = BACKBONES[backbone](backbone_inputs, options, **backbone_params)
            self.upsampler: nn.Module | None = None
            self.static_branch: StaticBranch | None = None
            fused = self.backbone.out_channels
        else:
            check_minimum(name, 1, static_filters=static_filters, upsampled_filters=upsampled_filters)
            self.backbone = BACKBONES[backbone](in_channels + noise_channels, options, **backbone_params)
            upsampler = _UPSAMPLERS[upsampling]
            self.upsampler = upsampler(self.backbone.out_channels, upsampled_filters, scale)
            self.static_branch = StaticBranch(static_channels, static_filters) if static_channels > 0 else None
            fused = upsampled_filters + (static_filters if static_channels > 0 else 0)
        self.feature_noise = NoiseInjection(noise_channels)
        head_inputs = fused + noise_channels
        self.output_head = OutputHead(head_inputs, fused, out_channels)
        grid = _grid_shape(name, localized_grid) if localized else None
        self.localized = LocalizedLinear(head_inputs, out_channels, grid) if grid is not None else None
        self.global_skip = GlobalSkip(name, scale, in_channels, out_channels, interpolation) if global_skip else None
        activations = _activations(name, output_activation, out_channels)
        self.output_activation = None if set(activations) == {"none"} else OutputActivation(activations)

    @property
    def stochastic(self) -> bool:
        """Whether repeated predictions differ: noise maps are injected, or dropout stays on at inference."""
        return self.input_noise.channels > 0 or any(
            isinstance(module, FieldDropout) and module.always_on for module in self.modules()
        )

    @property
    def size_multiple(self) -> int:
        """The coarse-grid multiple that tile sizes and origins respect (a U-Net's poolings), 1 for other backbones."""
        multiple = getattr(self.backbone, "size_multiple", 1)
        if self.upsampling == "pin":  # the backbone runs on the fine grid
            multiple //= math.gcd(multiple, self.scale)
        return multiple

    @property
    def takes_offset(self) -> bool:
        """Whether ``forward`` needs each sample's position in the training grid (a localized layer)."""
        return self.localized is not None

    def forward(
        self, x: torch.Tensor, static: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Downscale normalised fields.

        Args:
            x: (B, in_channels, h, w) coarse inputs, the coarse targets first.
            static: (B, static_channels, h * scale, w * scale) static fields, or
                ``None`` when the network has no static channels.
            offset: (B, 2) row and column of each sample's first fine cell in
                the training grid; needed by the localized layer unless the
                samples cover the whole training grid.

        Returns:
            (B, out_channels, h * scale, w * scale) fine-resolution fields; a
            new sample at every call when the network injects noise.

        Raises:
            ValueError: inputs of the wrong shape, or ``static`` missing.
        """
        check_inputs(x, static, scale=self.scale, in_channels=self.in_channels, static_channels=self.static_channels)
        if self.upsampling == "pin":
            interpolated = upsample(x, self.scale, self.interpolation)  # type: ignore[arg-type]
            fine_inputs = interpolated if static is None else torch.cat([interpolated, static], dim=1)
            features = self.backbone(self.input_noise(fine_inputs))
        else:
            assert self.upsampler is not None, "post-upsampling networks have an upsampler"
            features = self.upsampler(self.backbone(self.input_noise(x)))
            if self.static_branch is not None:
                features = torch.cat([features, self.static_branch(static)], dim=1)
        features = self.feature_noise(features)  # fresh fine-grid noise maps in front of the head
        out = self.output_head(features)
        if self.localized is not None:
            out = out + self.localized(features, offset)
        if self.global_skip is not None:
            out = out + (interpolated[:, : self.out_channels] if self.upsampling == "pin" else self.global_skip(x))
        if self.output_activation is not None:
            out = self.output_activation(out)
        return out


class RecurrentDownscalingNetwork(nn.Module):
    """A spatio-temporal network: (B, T, in_channels, h, w) -> (B, T, out_channels, H, W).

    A bidirectional ConvLSTM with ``lstm_filters`` per direction runs over the
    T coarse frames; each frame's inputs, concatenated with its ConvLSTM
    state, then go through a :class:`DownscalingNetwork`, so each predicted
    frame sees the whole window. The coarse targets stay the first inputs of
    the spatial network, so its global skip still adds their interpolation.
    With ``noise_channels > 0`` the spatial network injects the noise, drawn
    independently for every frame; the ConvLSTM sees none.
    """

    temporal = True

    def __init__(
        self,
        scale: int,
        in_channels: int,
        out_channels: int,
        static_channels: int,
        *,
        name: str,
        lstm_filters: int,
        **spatial: Any,
    ) -> None:
        super().__init__()
        check_minimum(name, 1, lstm_filters=lstm_filters)
        self.in_channels = in_channels
        self.temporal_encoder = ConvLSTM(in_channels, lstm_filters)
        self.spatial = DownscalingNetwork(
            scale, in_channels + self.temporal_encoder.out_channels, out_channels, static_channels, name=name, **spatial
        )

    @property
    def stochastic(self) -> bool:
        """Whether repeated predictions differ (the spatial network injects noise or keeps dropout on)."""
        return self.spatial.stochastic

    @property
    def size_multiple(self) -> int:
        """The coarse-grid multiple of the spatial network."""
        return self.spatial.size_multiple

    @property
    def takes_offset(self) -> bool:
        """Whether the spatial network has a localized layer."""
        return self.spatial.takes_offset

    def forward(
        self, x: torch.Tensor, static: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Downscale a window of frames.

        Args:
            x: (B, T, in_channels, h, w) coarse inputs, T >= 1 consecutive times.
            static: (B, static_channels, H, W) static fields (the same for every frame) or None.
            offset: (B, 2) as for :meth:`DownscalingNetwork.forward`.

        Returns:
            (B, T, out_channels, H, W).
        """
        if x.ndim != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"expected a window of coarse inputs of shape (batch, time, {self.in_channels}, h, w), got {tuple(x.shape)}"
            )
        batch, steps = x.shape[:2]
        frames = torch.cat([x, self.temporal_encoder(x)], dim=2).flatten(0, 1)
        if static is not None:
            static = static.repeat_interleave(steps, dim=0)
        if offset is not None:
            offset = offset.repeat_interleave(steps, dim=0)
        return self.spatial(frames, static, offset).unflatten(0, (batch, steps))


def check_inputs(
    x: torch.Tensor, static: torch.Tensor | None, *, scale: int, in_channels: int, static_channels: int
) -> None:
    """Raise ``ValueError`` naming the expected shapes when ``x`` or ``static`` do not fit the network."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"expected coarse inputs of shape (batch, {in_channels}, h, w), got {tuple(x.shape)}")
    if static_channels == 0:
        if static is not None:
            raise ValueError(
                f"this network was built without static fields (static_channels=0) but got static of shape {tuple(static.shape)}; pass static=None"
            )
        return
    batch, _, h, w = x.shape
    expected = (batch, static_channels, h * scale, w * scale)
    if static is None:
        raise ValueError(
            f"this network needs static fields of shape {expected} (batch, static_channels, h*scale, w*scale), got None"
        )
    if tuple(static.shape) != expected:
        raise ValueError(
            f"expected static fields of shape {expected} (batch, static_channels, h*scale, w*scale) for inputs of shape {tuple(x.shape)}, got {tuple(static.shape)}"
        )


def _grid_shape(name: str, localized_grid: Sequence[int] | None) -> tuple[int, int]:
    valid = (
        isinstance(localized_grid, (list, tuple))
        and len(localized_grid) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in localized_grid)
    )
    if not valid:
        raise ConfigError(
            f"model {name!r} with localized=True needs localized_grid=(H, W), the shape of the full fine training grid, "
            f"got {localized_grid!r}; dl4ds.model.DownscalingModel.build (and dl4ds train) fill it in from the data"
        )
    return int(localized_grid[0]), int(localized_grid[1])  # type: ignore[index]


def _activations(name: str, output_activation: str | Sequence[str], out_channels: int) -> tuple[str, ...]:
    if isinstance(output_activation, str):
        activations = (output_activation,) * out_channels
    else:
        activations = tuple(output_activation)
        if len(activations) != out_channels:
            raise ConfigError(
                f"model {name!r} has {out_channels} outputs but output_activation lists {len(activations)} activations; "
                "give one per output variable, or a single one for all"
            )
    for activation in activations:
        check_choice(name, "output_activation", activation, OUTPUT_ACTIVATIONS)
    return activations


def _keyword(name: str, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)


_COMMON = [
    inspect.Parameter("scale", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("in_channels", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("out_channels", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("static_channels", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=0),
]


def _backbone_parameters(backbone: str) -> list[inspect.Parameter]:
    """The keyword parameters of a backbone's constructor (after ``in_channels`` and ``options``)."""
    return list(inspect.signature(BACKBONES[backbone]).parameters.values())[2:]


def _signature(backbone: str, upsampling: str, temporal: bool) -> inspect.Signature:
    """The parameters of ``[rec]backbone_upsampling`` with their defaults, in the registry's convention."""
    backbone_parameters = _backbone_parameters(backbone)
    overrides = _PIN_DEFAULTS[backbone] if upsampling == "pin" else {}
    parameters = [_keyword(p.name, overrides.get(p.name, p.default)) for p in backbone_parameters]
    if upsampling != "pin":
        parameters += [_keyword("static_filters", 16), _keyword("upsampled_filters", 8)]
    if temporal:
        parameters.append(_keyword("lstm_filters", 8))
    parameters += [
        _keyword("noise_channels", 0),
        _keyword("global_skip", True),
        _keyword("interpolation", "bicubic"),
        _keyword("output_activation", "none"),
        _keyword("localized", False),
        _keyword("localized_grid", None),
    ]
    parameters += [_keyword(key, field.default) for key, field in BlockOptions.__dataclass_fields__.items()]
    return inspect.Signature([*_COMMON, *parameters])


def _register(backbone: str, upsampling: str, temporal: bool) -> None:
    name = f"{'rec' if temporal else ''}{backbone}_{upsampling}"
    signature = _signature(backbone, upsampling, temporal)
    defaults = {p.name: p.default for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    backbone_keys = {p.name for p in _backbone_parameters(backbone)}
    option_keys = set(BlockOptions.__dataclass_fields__)

    def build(scale: int, in_channels: int, out_channels: int, static_channels: int = 0, **params: Any) -> nn.Module:
        values = defaults | params
        options = BlockOptions(**{k: values.pop(k) for k in option_keys}).validate(name)
        backbone_params = {k: values.pop(k) for k in backbone_keys}
        network = RecurrentDownscalingNetwork if temporal else DownscalingNetwork
        return network(
            scale,
            in_channels,
            out_channels,
            static_channels,
            name=name,
            backbone=backbone,
            upsampling=upsampling,
            backbone_params=backbone_params,
            options=options,
            **values,
        )

    build.__signature__ = signature  # type: ignore[attr-defined]
    build.__name__ = build.__qualname__ = name
    kind = "ConvLSTM window + " if temporal else ""
    build.__doc__ = f"{kind}{_BACKBONE_DESCRIPTIONS[backbone]}, {_UPSAMPLING_DESCRIPTIONS[upsampling]}"
    register_model(name)(build)


_BACKBONE_DESCRIPTIONS = {
    "convnet": "plain convolutional",
    "resnet": "residual (EDSR)",
    "densenet": "dense",
    "convnext": "ConvNeXt",
    "unet": "U-Net",
}
_UPSAMPLING_DESCRIPTIONS = {
    "pin": "on the interpolated input (pre-upsampling)",
    "spc": "sub-pixel convolution upsampling",
    "rc": "resize convolution upsampling",
    "dc": "transposed convolution upsampling",
}


def _register_all() -> None:
    for temporal in (False, True):
        for backbone in BACKBONES:
            for upsampling in UPSAMPLINGS:
                _register(backbone, upsampling, temporal)


_register_all()
