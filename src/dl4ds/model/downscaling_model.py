"""The trained downscaling model: a network with its metadata, static fields and mask of cells without truth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from dl4ds import networks
from dl4ds.data.normalization import Normalizer
from dl4ds.data.pairing import PairedData
from dl4ds.errors import ConfigError
from dl4ds.model.capabilities import Capabilities, measure_receptive_radius
from dl4ds.model.metadata import ModelMetadata
from dl4ds.networks.blocks import OutputActivation
from dl4ds.utils.seeding import seeded

_ROUNDING = 16 * float(np.finfo(np.float32).eps)
"""Relative distance to an output bound within which float32 rounding (tile blending, window means) is at the bound."""


class DownscalingModel(nn.Module):
    """A network with its metadata, static fields and mask of cells without truth.

    Buffers (saved in the state dict):
        static: (static channels, H, W) normalised static fields on the fine grid.
        no_truth: (variables, H, W) True where the training target was NaN at
            every time step (e.g. sea cells of a land-only dataset); predictions
            there are set to NaN.
    """

    static: torch.Tensor
    no_truth: torch.Tensor

    def __init__(
        self, network: nn.Module, metadata: ModelMetadata, static: torch.Tensor, no_truth: torch.Tensor
    ) -> None:
        super().__init__()
        self.network = network
        self.metadata = metadata
        self.register_buffer("static", static)
        self.register_buffer("no_truth", no_truth)
        self._receptive_radius: int | None = None
        self._radius_measured = False

    @classmethod
    def build(
        cls,
        architecture: str,
        data: PairedData,
        normalizer: Normalizer,
        *,
        params: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        time_window: int | None = None,
        seed: int | None = None,
    ) -> DownscalingModel:
        """Create an untrained model fitting ``data`` (normally the training period).

        Args:
            architecture: registry name, e.g. ``"resnet_spc"`` or ``"recresnet_spc"``.
            data: paired data; gives the scale, variables, grid and static fields.
            normalizer: statistics fitted on the training period.
            params: architecture parameters. With ``localized=True`` the
                ``localized_grid`` is filled in from the data's fine grid.
            config: the run's configuration, stored in the metadata.
            time_window: frames per sample, required (>= 1) for spatio-temporal
                (``rec*``) networks and refused for spatial ones.
            seed: seeds the initial weights, leaving torch's global generator
                as it was, so that the same seed gives the same model; None
                draws them from the global generator, like any ``nn.Module``.

        Raises:
            ConfigError: invalid parameters, or a time window that does not fit the network.
        """
        params = dict(params or {})
        if params.get("localized") and params.get("localized_grid") is None:
            params["localized_grid"] = list(data.fine_grid.shape)
        with seeded(seed, torch.device("cpu")):
            network = networks.create(
                architecture,
                scale=data.scale,
                in_channels=len(data.input_variables),
                out_channels=len(data.target_variables),
                static_channels=len(data.static_variables),
                **params,
            )
        _check_time_window(architecture, Capabilities.of(network, 0).temporal, time_window)
        _set_output_floor(network, normalizer)
        metadata = ModelMetadata(
            architecture=architecture,
            architecture_params=params,
            scale=data.scale,
            target_variables=data.target_variables,
            input_variables=data.input_variables,
            static_variables=data.static_variables,
            attrs=data.attrs,
            fine_grid=data.fine_grid,
            normalizer=normalizer,
            config=dict(config or {}),
            time_window=time_window,
            padding=data.padding,
            resampling=data.resampling,
        )
        if data.static is None:
            static = torch.zeros((0, *data.fine_grid.shape))
        else:
            static = torch.from_numpy(normalizer.normalize_static(data.static.values))
        no_truth = torch.from_numpy(np.isnan(data.target.values).all(axis=0))
        return cls(network, metadata, static, no_truth)

    @classmethod
    def from_metadata(cls, metadata: ModelMetadata) -> DownscalingModel:
        """An untrained model with the architecture and buffers' shapes of ``metadata``."""
        network = networks.create(
            metadata.architecture,
            scale=metadata.scale,
            in_channels=len(metadata.input_variables),
            out_channels=len(metadata.target_variables),
            static_channels=len(metadata.static_variables),
            **metadata.architecture_params,
        )
        shape = metadata.fine_grid.shape
        static = torch.zeros((len(metadata.static_variables), *shape))
        no_truth = torch.zeros((len(metadata.target_variables), *shape), dtype=torch.bool)
        return cls(network, metadata, static, no_truth)

    @property
    def capabilities(self) -> Capabilities:
        """What this model can do: temporal, stochastic, size multiple, offsets, static fields, domain-bound."""
        return Capabilities.of(self.network, len(self.metadata.static_variables))

    def receptive_radius(self, *, within: int | None = None) -> int | None:
        """How many coarse cells away an input can still change a fine output cell; None if unbounded.

        Measured once (see :func:`~dl4ds.model.capabilities.measure_receptive_radius`) and remembered.
        With ``within``, probes of at most that many coarse cells are used, which
        bounds the cost: None then also means "more than ``within // 2``", and is not remembered.
        """
        if not self._radius_measured:
            radius = measure_receptive_radius(self, largest=within)
            if radius is None and within is not None:
                return None
            self._receptive_radius = radius
            self._radius_measured = True
        return self._receptive_radius

    def to_physical(self, values: np.ndarray, axis: int = -3) -> np.ndarray:
        """Normalised outputs of the network (..., V, H, W) in physical units, float32.

        Denormalised with the target statistics; a variable whose output
        activation bounds it at physical zero (``relu``, ``softplus``, e.g.
        precipitation) is clipped there, and values within float32 rounding of
        the bound (where the activation clipped) are exactly 0, so dry cells
        are dry rather than -5e-8 mm. ``axis`` is the variable axis.
        """
        physical = self.metadata.normalizer.target.denormalize(values, axis=axis)
        axis = axis % values.ndim
        for channel, floor in self.output_floors().items():
            index = (slice(None),) * axis + (channel,)
            tolerance = _ROUNDING * max(1.0, abs(floor))
            at_bound = values[index] - floor <= tolerance
            physical[index] = np.where(at_bound, 0.0, np.maximum(physical[index], 0.0))
        return physical

    def output_floors(self) -> dict[int, float]:
        """``{output channel: its lower bound in normalised units}`` for the outputs bounded at physical zero."""
        for module in self.network.modules():
            if isinstance(module, OutputActivation):
                floors = module.floor.detach().cpu().tolist()
                return {index: floors[index] for index, name in enumerate(module.activations) if name != "none"}
        return {}

    def forward(
        self, x: torch.Tensor, static: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Map normalised coarse inputs to normalised fine fields.

        Args:
            x: (B, C, h, w) coarse inputs, or (B, T, C, h, w) windows for a
                spatio-temporal network.
            static: the (B, S, h*s, w*s) window of the static fields matching
                ``x``; may be omitted when ``x`` covers the whole training domain.
            offset: (B, 2) row and column of each sample's first fine cell in
                the training grid (used by localized layers); None when ``x``
                covers the whole training domain.

        Returns:
            (B, V, h*s, w*s), or (B, T, V, h*s, w*s) for windows.
        """
        takes_static = len(self.metadata.static_variables) > 0
        if takes_static and static is None:
            static = self.static.unsqueeze(0).expand(x.shape[0], -1, -1, -1)
        return self.network(x, static if takes_static else None, offset)


def _check_time_window(architecture: str, temporal: bool, time_window: int | None) -> None:
    if temporal and (time_window is None or time_window < 1):
        raise ConfigError(
            f"the spatio-temporal model {architecture!r} needs a time window of consecutive frames per sample, "
            f"got {time_window!r}; set model.time_window in the config (e.g. 4)"
        )
    if not temporal and time_window is not None:
        spatial = architecture[3:] if architecture.startswith("rec") else architecture
        raise ConfigError(
            f"model {architecture!r} is spatial and takes one time step per sample, but time_window={time_window} "
            f"was given; remove time_window or choose a spatio-temporal model such as 'rec{spatial}'"
        )


def _set_output_floor(network: nn.Module, normalizer: Normalizer) -> None:
    """Place output activations' floors at physical zero, in the normalised units the network predicts."""
    for module in network.modules():
        if isinstance(module, OutputActivation):
            zero = normalizer.target.normalize(np.zeros(module.floor.shape[0]), axis=0)
            module.floor.copy_(torch.from_numpy(zero))
