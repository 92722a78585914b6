"""Data pipeline: xarray in, normalised torch samples out (in memory, or read lazily from NetCDF/Zarr)."""

from dl4ds.data import units
from dl4ds.data.grid import Grid, standardize
from dl4ds.data.hindcast_pairing import HindcastMOS, select_start_years
from dl4ds.data.lazy import LazyPatchDataset, fit_lazy_normalizer
from dl4ds.data.normalization import ChannelStats, Normalizer
from dl4ds.data.pairing import MOS, PairedData, PerfectProg, Source
from dl4ds.data.torch_dataset import DownscalingDataset
from dl4ds.data.units import with_units

__all__ = [
    "MOS",
    "ChannelStats",
    "DownscalingDataset",
    "Grid",
    "HindcastMOS",
    "LazyPatchDataset",
    "Normalizer",
    "PairedData",
    "PerfectProg",
    "Source",
    "fit_lazy_normalizer",
    "select_start_years",
    "standardize",
    "units",
    "with_units",
]
