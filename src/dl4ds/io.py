"""Reading gridded data and writing CF-compliant NetCDF and Zarr."""

from __future__ import annotations

import glob
import os
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from dl4ds import cf
from dl4ds._version import __version__
from dl4ds.errors import DataError, OutputError
from dl4ds.utils.atomic import atomic_path

ZARR_MARKERS = (".zgroup", ".zattrs", ".zmetadata", "zarr.json")
"""Files at the root of a Zarr store (format 2 or 3)."""

INPUT_ATTRIBUTE = "dl4ds_input"
"""Global attribute of a downscaled file naming the coarse data it was made from."""


def resolve_source(path: str | os.PathLike[str]) -> Path:
    """The absolute path of a data source: a file or store, or ``bundled:NAME`` for a bundled dataset."""
    text = str(path)
    if text.startswith("bundled:"):
        from dl4ds import datasets

        return datasets.path(text.removeprefix("bundled:")).resolve()
    return Path(path).resolve()


DataPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""A NetCDF file or Zarr store, ``bundled:NAME``, a glob pattern (``era5_*.nc``) or a list of files."""

GLOB_CHARACTERS = "*?["


def open_data(path: DataPaths) -> xr.Dataset:
    """Open data lazily (dask-backed): a NetCDF file or Zarr store, ``bundled:NAME``, a glob or a list of files.

    Several files (a list, or the files a glob pattern matches, in sorted
    order) are opened together with :func:`xarray.open_mfdataset`: split
    along time, or holding different variables, on the same grid.

    Raises:
        DataError: a path that does not exist, a pattern that matches nothing,
            an unreadable file, or files that cannot be combined (naming them).
    """
    paths = expand_paths(path)
    if len(paths) == 1:
        return _open_one(paths[0])
    for each in paths:
        if not each.exists():
            raise DataError(f"input {str(each)!r} does not exist; give the paths of NetCDF files or Zarr stores")
    engine = "zarr" if any(_is_zarr(each) for each in paths) else None
    try:
        return xr.open_mfdataset(
            paths,
            engine=engine,
            chunks={},
            combine="by_coords",
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="exact",
        )
    except Exception as error:  # the engines and the combination raise many unrelated types
        shown = ", ".join(repr(str(each)) for each in paths[:4]) + (", ..." if len(paths) > 4 else "")
        raise DataError(
            f"cannot open the {len(paths)} files {shown} as one dataset ({type(error).__name__}: {error}); give files "
            "that split one dataset along time or by variable, on the same grid"
        ) from None


def expand_paths(path: DataPaths) -> list[Path]:
    """The files ``path`` names: itself, a bundled dataset's file, every file a glob matches (sorted), or a list's."""
    if isinstance(path, str | os.PathLike):
        text = str(path)
        if text.startswith("bundled:"):
            return [resolve_source(text)]
        if any(character in text for character in GLOB_CHARACTERS) and not Path(text).exists():
            matches = sorted(glob.glob(os.path.expanduser(text)))
            if not matches:
                raise DataError(f"no file matches the pattern {text!r}; check the folder and the pattern")
            return [Path(match) for match in matches]
        return [Path(path)]
    paths = [each for item in path for each in expand_paths(item)]
    if not paths:
        raise DataError("the list of input files is empty; give at least one NetCDF file or Zarr store")
    return paths


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or is_zarr_store(path)


def _open_one(path: Path) -> xr.Dataset:
    if not path.exists():
        raise DataError(f"input {str(path)!r} does not exist; give the path of a NetCDF file or Zarr store")
    try:
        if _is_zarr(path):
            return xr.open_zarr(path)
        return xr.open_dataset(path, chunks={})
    except Exception as error:  # the engines raise many unrelated types for unreadable files
        raise DataError(
            f"cannot read {str(path)!r} as NetCDF or Zarr ({type(error).__name__}: {error}); check that the file is "
            "complete and in one of those formats"
        ) from None


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a Zarr store (format 2 or 3)."""
    path = Path(path)
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_MARKERS)


def input_sources(ds: xr.Dataset | xr.DataArray) -> list[Path]:
    """The files or stores ``ds`` was read from (xarray's ``source`` encoding of it and its variables)."""
    variables = ds.variables.values() if isinstance(ds, xr.Dataset) else [ds.variable]
    sources = [ds.encoding.get("source"), *(variable.encoding.get("source") for variable in variables)]
    return sorted({Path(source).resolve() for source in sources if isinstance(source, str | os.PathLike)})


def check_not_input(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Raise :class:`OutputError` when ``output`` is one of ``inputs`` (dl4ds never overwrites its input).

    Paths are compared after resolving links; ``bundled:NAME`` inputs are resolved to their files.
    """
    target = Path(output).resolve()
    for source in inputs:
        if resolve_source(source) == target:
            raise OutputError(
                f"the output {str(output)!r} is the input {str(source)!r}: writing it would destroy the data it is "
                "computed from. Write the output to another path"
            )


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
    ds = _for_writing(ds)
    with atomic_path(path) as temporary:
        ds.to_netcdf(temporary, format="NETCDF4", encoding=cf_encoding(ds))
    return Path(path)


def write_zarr(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to a Zarr store (format 2) atomically, chunked like its dask arrays, float32 with NaN fill values.

    An existing Zarr store at ``path`` is replaced as a whole, like an existing
    NetCDF file; any other directory or file there is refused.

    Raises:
        OutputError: ``path`` is a file or a directory that is not a Zarr store, or cannot be written.
    """
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise DataError('writing Zarr needs the zarr package: pip install "dl4ds[zarr]"') from None
    destination = Path(path)
    if destination.is_dir() and not is_zarr_store(destination):
        raise OutputError(
            f"the output {str(destination)!r} is an existing directory that is not a Zarr store; dl4ds only "
            "replaces Zarr stores. Remove it or choose another path"
        )
    ds = _for_writing(ds)
    encoding: dict[Hashable, dict[str, Any]] = {
        name: {"dtype": "float32", "_FillValue": np.float32(np.nan)}
        for name, variable in ds.data_vars.items()
        if np.issubdtype(variable.dtype, np.floating)
    }
    encoding |= {  # CF: coordinates have no fill value
        name: {"_FillValue": None} for name in ds.coords if np.issubdtype(ds[name].dtype, np.floating)
    }
    with atomic_path(path, directory=True) as temporary:
        ds.to_zarr(temporary, mode="w-", encoding=encoding, zarr_format=2, consolidated=True)
    return Path(path)


def _for_writing(ds: xr.Dataset) -> xr.Dataset:
    """A copy of ``ds`` with complete CF metadata (:func:`dl4ds.cf.complete`), without the encoding of its inputs.

    Codecs, chunks and fill values inherited from an input (a Zarr v3 store, a
    NetCDF file) may not fit the output format; dl4ds sets its own.
    """
    ds = cf.complete(ds.drop_encoding())
    ds.attrs.setdefault("source", f"dl4ds {__version__}")
    return ds
