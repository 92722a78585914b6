"""What a trained network needs to be applied: variables, grid, normalisation, architecture; stored in every checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dl4ds.data.grid import Grid
from dl4ds.data.normalization import Normalizer
from dl4ds.data.pairing import NO_PADDING, Padding, Resampling, unpadded


@dataclass(frozen=True)
class ModelMetadata:
    """What a network was trained on; stored in every checkpoint as plain JSON-like data.

    Attributes:
        architecture: registry name of the network, e.g. ``"resnet_spc"``.
        architecture_params: keyword parameters the network was built with.
        scale: refinement factor from the coarse to the fine grid.
        target_variables: names of the output variables.
        input_variables: names of the coarse input variables, in channel order
            (the coarse counterparts of the targets first, then predictors).
        static_variables: names of the static high-resolution channels.
        attrs: CF attributes (units, standard_name, long_name) per variable.
        fine_grid: the high-resolution grid of the training domain.
        normalizer: normalisation statistics from the training period.
        config: the full configuration of the training run, if any.
        time_window: frames per sample of a spatio-temporal network, None for
            a spatial one.
        padding: fine cells around the target domain that made ``fine_grid``
            a multiple of the scale (MOS at any pair of grids); outputs are cut
            back to :attr:`domain_grid`.
        resampling: the grid of the coarse data the model was trained on and
            how it was regridded onto the coarse grid, when it was not on it;
            input on that grid is regridded the same way.
    """

    architecture: str
    architecture_params: Mapping[str, Any]
    scale: int
    target_variables: tuple[str, ...]
    input_variables: tuple[str, ...]
    static_variables: tuple[str, ...]
    attrs: Mapping[str, Mapping[str, str]]
    fine_grid: Grid
    normalizer: Normalizer
    config: Mapping[str, Any] = field(default_factory=dict)
    time_window: int | None = None
    padding: Padding = NO_PADDING
    resampling: Resampling | None = None

    @property
    def coarse_grid(self) -> Grid:
        return self.fine_grid.coarsen(self.scale)

    @property
    def domain_grid(self) -> Grid:
        """The training target's domain: the fine grid without its padding."""
        return unpadded(self.fine_grid, self.padding)

    def to_dict(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "architecture_params": dict(self.architecture_params),
            "scale": self.scale,
            "target_variables": list(self.target_variables),
            "input_variables": list(self.input_variables),
            "static_variables": list(self.static_variables),
            "attrs": {name: dict(values) for name, values in self.attrs.items()},
            "fine_grid": self.fine_grid.to_dict(),
            "normalizer": self.normalizer.to_dict(),
            "config": dict(self.config),
            "time_window": self.time_window,
            "padding": [list(axis) for axis in self.padding],
            "resampling": None if self.resampling is None else self.resampling.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        return cls(
            architecture=data["architecture"],
            architecture_params=dict(data["architecture_params"]),
            scale=int(data["scale"]),
            target_variables=tuple(data["target_variables"]),
            input_variables=tuple(data["input_variables"]),
            static_variables=tuple(data["static_variables"]),
            attrs={name: dict(values) for name, values in data["attrs"].items()},
            fine_grid=Grid.from_dict(data["fine_grid"]),
            normalizer=Normalizer.from_dict(data["normalizer"]),
            config=dict(data["config"]),
            time_window=data.get("time_window"),
            padding=_padding(data.get("padding")),
            resampling=None if data.get("resampling") is None else Resampling.from_dict(data["resampling"]),
        )


def _padding(value: Any) -> Padding:
    """The padding stored in a checkpoint (none in those written before 0.2)."""
    if value is None:
        return NO_PADDING
    (top, bottom), (left, right) = value
    return (int(top), int(bottom)), (int(left), int(right))
