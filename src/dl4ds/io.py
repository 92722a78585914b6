"""Reading gridded data and writing CF-compliant NetCDF and Zarr."""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dl4ds._version import __version__
from dl4ds.errors import DataError
from dl4ds.utils.atomic import atomic_path


def open_data(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a NetCDF file or Zarr store lazily (dask-backed); 'bundled:NAME' opens a bundled dataset."""
    text = str(path)
    if text.startswith("bundled:"):
        from dl4ds import datasets

        path = datasets.path(text.removeprefix("bundled:"))
    path = Path(path)
    if not path.exists():
        raise DataError(f"input {str(path)!r} does not exist; give the path of a NetCDF file or Zarr store")
    is_zarr = path.suffix == ".zarr" or (path.is_dir() and any((path / n).exists() for n in (".zgroup", "zarr.json")))
    try:
        if is_zarr:
            return xr.open_zarr(path)
        return xr.open_dataset(path, chunks={})
    except Exception as error:  # the engines raise many unrelated types for unreadable files
        raise DataError(
            f"cannot read {str(path)!r} as NetCDF or Zarr ({type(error).__name__}: {error}); check that the file is "
            "complete and in one of those formats"
        ) from None


def cf_encoding(ds: xr.Dataset) -> dict[Hashable, dict[str, Any]]:
    """Compressed float32 data variables with NaN as fill value; coordinates without fill values.

    Data variables held as dask arrays are chunked on disk like in memory.
    """
    encoding: dict[Hashable, dict[str, Any]] = {}
    for name, variable in ds.data_vars.items():
        if np.issubdtype(variable.dtype, np.floating):
            encoding[name] = {"dtype": "float32", "zlib": True, "complevel": 4, "_FillValue": np.float32(np.nan)}
            if variable.chunks:
                encoding[name]["chunksizes"] = tuple(chunks[0] for chunks in variable.chunks)
    for name in ds.coords:
        if name not in encoding and np.issubdtype(ds[name].dtype, np.floating):
            encoding[name] = {"_FillValue": None}
    return encoding


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to NetCDF-4 atomically (nothing appears at ``path`` unless the write completes)."""
    ds = ds.copy()
    ds.attrs.setdefault("Conventions", "CF-1.8")
    ds.attrs.setdefault("source", f"dl4ds {__version__}")
    with atomic_path(path) as temporary:
        ds.to_netcdf(temporary, format="NETCDF4", encoding=cf_encoding(ds))
    return Path(path)


def write_zarr(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to a Zarr store atomically, chunked like its dask arrays, float32 with NaN fill values."""
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise DataError('writing Zarr needs the zarr package: pip install "dl4ds[zarr]"') from None
    ds = ds.copy()
    ds.attrs.setdefault("Conventions", "CF-1.8")
    ds.attrs.setdefault("source", f"dl4ds {__version__}")
    encoding = {
        name: {"dtype": "float32", "_FillValue": np.float32(np.nan)}
        for name, variable in ds.data_vars.items()
        if np.issubdtype(variable.dtype, np.floating)
    }
    with atomic_path(path) as temporary:
        ds.to_zarr(temporary, mode="w-", encoding=encoding, zarr_format=2, consolidated=True)
    return Path(path)
