"""The downscaling options, declared once: the arguments of :class:`~dl4ds.inference.Downscaler` and of ``dl4ds downscale``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dl4ds.data.regrid import RegridMethod
from dl4ds.networks.diffusion import DEFAULT_STEPS
from dl4ds.utils.options import Options

OutputFormat = Literal["netcdf", "zarr"]


class DownscaleOptions(Options):
    """How a trained model is applied to coarse data: tiles, batches, ensemble samples, device, input handling, output."""

    tile_size: int | None = Field(
        default=None,
        ge=1,
        description="largest tile, in cells of the coarse input grid; none runs the whole domain at once. Tiles "
        "are spread evenly and blended with smooth weights",
    )
    overlap: int | None = Field(
        default=None,
        ge=0,
        description="coarse cells shared by neighbouring tiles; none takes the overlap that makes the tiled "
        "result equal the untiled one (twice the network's receptive radius plus 2 for the blend)",
    )
    batch_size: int = Field(default=16, ge=1, description="tiles per forward pass")
    samples: int = Field(
        default=1,
        ge=1,
        description="ensemble members drawn per input by a stochastic model (noise_channels or Monte-Carlo "
        "dropout): a leading 'sample' dim, plus <name>_mean and <name>_spread (standard deviation, ddof 1) over it",
    )
    seed: int | None = Field(
        default=None,
        description="seeds the samples: the same seed gives the same members whatever the tiling, batch and chunk "
        "sizes; none draws a seed from torch's global generator",
    )
    steps: int = Field(
        default=DEFAULT_STEPS,
        ge=1,
        description="sampler steps of a diffusion model (Heun's method: 2 * steps - 1 denoiser evaluations per "
        "member); more steps give finer detail at a proportional cost",
    )
    churn: float = Field(
        default=0.0,
        ge=0,
        description="EDM's S_churn for a diffusion model's sampler: 0 is deterministic given the seed; > 0 (e.g. "
        "10) adds fresh noise at every step",
    )
    device: str = Field(default="cpu", description="torch device: cpu, cuda, cuda:N, mps")
    regrid: bool = Field(
        default=False,
        description="regrid input that is not on the model's coarse grid onto it (with regrid_method); without it "
        "such input is an error, except input on the grid of the model's MOS training data, regridded as in training",
    )
    regrid_method: RegridMethod | None = Field(
        default=None,
        description="how regrid brings the input onto the model's grid: linear, nearest, cubic or conservative "
        "(area-weighted, keeps totals); none takes the model's own (MOS training) method, else linear",
    )
    rename: dict[str, str] = Field(
        default_factory=dict, description="input variable names mapped to the model's, e.g. ts to t2m"
    )
    units: dict[str, str] = Field(
        default_factory=dict,
        description="units of input variables (after rename), set or overriding the file's, e.g. t2m to degC; the "
        "input is converted to the model's units",
    )
    time_dim: str | None = Field(
        default=None,
        description="the dim a spatio-temporal network runs its windows along; none picks time or, without one, a "
        "lead-time dim (step, lead_time, forecastMonth...)",
    )
    chunk_size: int | None = Field(
        default=None,
        ge=1,
        description="time steps x members per block and per output chunk; none keeps each block's fine output "
        "near 32 MiB",
    )
    format: OutputFormat | None = Field(
        default=None, description="output format of write(); none: zarr for a .zarr path, else netcdf"
    )
    progress: bool = Field(default=False, description="show a progress bar over the blocks")

    @model_validator(mode="after")
    def _overlap_inside_tiles(self) -> DownscaleOptions:
        if self.tile_size is not None and self.overlap is not None and self.overlap >= self.tile_size:
            raise ValueError(
                f"overlap={self.overlap} must be smaller than tile_size={self.tile_size} (both in coarse cells); "
                "use a smaller overlap or larger tiles"
            )
        return self
