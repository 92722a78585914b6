"""Bad inputs, options and outputs of downscaling are refused with the exact error, a fix, and nothing written.

Every case runs through Python (``Downscaler(...).write``) and the command line (``dl4ds downscale``), with the
session's trained model applied to small files built in the test's folder. Grids and units are tested with
the pairing and regridding that handle them.
"""

import errno
import os

import pytest
import torch
import xarray as xr
from helpers import assert_refused, assert_refused_by_cli

from dl4ds.errors import ConfigError, DataError, OutputError
from dl4ds.inference import Downscaler
from dl4ds.io import open_data


def _input(change=None, name="in.nc"):
    """A case's input: the coarse file changed by ``change`` (a Dataset -> Dataset function), written as ``name``."""

    def make(tmp_path, coarse_file):
        with xr.open_dataset(coarse_file) as coarse:
            ds = coarse.load()
        path = tmp_path / name
        (change(ds) if change else ds).to_netcdf(path)
        return path

    return make


def _missing(tmp_path, coarse_file):
    return tmp_path / "missing.nc"


def _garbage(tmp_path, coarse_file):
    (tmp_path / "in.nc").write_bytes(b"CDF\x01 truncated")
    return tmp_path / "in.nc"


INPUTS = {
    "missing_file": (_missing, {}, DataError, "does not exist; give the path of a NetCDF file or Zarr store"),
    "not_netcdf": (_garbage, {}, DataError, "cannot read .* check that the file is complete"),
    "missing_variable": (
        _input(lambda ds: ds.rename(t2m="tas")),
        {},
        DataError,
        r"no variable 't2m'.*--rename NAME_IN_INPUT=t2m",
    ),
    "rename_of_unknown_variable": (
        _input(),
        {"rename": {"tas": "t2m"}},
        DataError,
        "cannot rename \\['tas'\\].*it has \\['t2m'\\]",
    ),
}
OPTIONS = {
    "samples_of_a_deterministic_model": ({"samples": 3}, ConfigError, "deterministic.*noise_channels.*samples=1"),
    "overlap_as_large_as_tiles": ({"tile_size": 4, "overlap": 4}, ConfigError, "smaller overlap or larger tiles"),
    "tile_size_0": ({"tile_size": 0}, ConfigError, "tile_size=0 must be at least 1"),
    "batch_size_0": ({"batch_size": 0}, ConfigError, "batch_size=0 must be at least 1"),
    "chunk_size_0": ({"chunk_size": 0}, ConfigError, "chunk_size=0 must be at least 1"),
    "unknown_device": ({"device": "tpu"}, ConfigError, "'tpu' is not a torch device; use 'cpu'"),
    "cuda_without_gpu": ({"device": "cuda"}, ConfigError, "no CUDA GPU here .*--device cpu"),
    "missing_gpu_index": ({"device": "cuda:7"}, ConfigError, "(no CUDA GPU here .*--device cpu)|(does not exist)"),
}


def _cli_options(options):
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, dict):
            for name, new in value.items():
                args += [flag, f"{name}={new}"]
        else:
            args += [flag, value]
    return args


@pytest.fixture
def python(trained_checkpoint):
    def run(input_path, output, **options):
        Downscaler(trained_checkpoint, **options).write(open_data(input_path), output)

    return run


@pytest.mark.parametrize("case", list(INPUTS))
def test_python_refuses_bad_input(case, python, coarse_file, tmp_path):
    make, options, error, fix = INPUTS[case]
    path = make(tmp_path, coarse_file)
    assert_refused(lambda: python(path, tmp_path / "out.nc", **options), error, fix, tmp_path)


@pytest.mark.parametrize("case", list(INPUTS))
def test_cli_refuses_bad_input(case, trained_checkpoint, coarse_file, tmp_path):
    make, options, error, fix = INPUTS[case]
    path = make(tmp_path, coarse_file)
    args = ["downscale", trained_checkpoint, path, "-o", tmp_path / "out.nc", *_cli_options(options)]
    assert_refused_by_cli(args, error, fix, tmp_path)


@pytest.mark.parametrize("case", list(OPTIONS))
def test_python_refuses_bad_options(case, python, coarse_file, tmp_path):
    options, error, fix = OPTIONS[case]
    if options.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert_refused(lambda: python(coarse_file, tmp_path / "out.nc", **options), error, fix, tmp_path)


@pytest.mark.parametrize("case", list(OPTIONS))
def test_cli_refuses_bad_options(case, trained_checkpoint, coarse_file, tmp_path):
    options, error, fix = OPTIONS[case]
    if options.get("device", "").startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = ["downscale", trained_checkpoint, coarse_file, "-o", tmp_path / "out.nc", *_cli_options(options)]
    assert_refused_by_cli(args, error, fix, tmp_path)


# --- outputs ------------------------------------------------------------------------------------------------------


def _existing_directory(tmp_path, coarse_file):
    (tmp_path / "out.nc").mkdir()
    return tmp_path / "out.nc"


def _under_a_file(tmp_path, coarse_file):
    (tmp_path / "results").write_text("a file")
    return tmp_path / "results" / "out.nc"


def _the_input(tmp_path, coarse_file):
    return _input()(tmp_path, coarse_file)


def _not_a_zarr_store(tmp_path, coarse_file):
    (tmp_path / "out.zarr").mkdir()
    (tmp_path / "out.zarr" / "notes.txt").write_text("my notes")
    return tmp_path / "out.zarr"


def _zarr_over_a_file(tmp_path, coarse_file):
    (tmp_path / "out.zarr").write_text("a file")
    return tmp_path / "out.zarr"


def _full_disk(monkeypatch):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)


def _full_disk_as_hdf_error(monkeypatch):
    import shutil

    def failing(self, *args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    usage = shutil.disk_usage("/")
    monkeypatch.setattr(xr.Dataset, "to_netcdf", failing)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=4096))


def _quota(monkeypatch):
    def over(self, *args, **kwargs):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", over)


def _read_only(monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", read_only)


OUTPUTS = {
    "existing_directory": (_existing_directory, None, "is an existing directory; give the path of a file"),
    "parent_is_a_file": (_under_a_file, None, "is a file, not a directory; remove it or choose another path"),
    "output_is_the_input": (_the_input, None, "is the input .*Write the output to another path"),
    "directory_that_is_not_a_zarr_store": (
        _not_a_zarr_store,
        None,
        "not a Zarr store; dl4ds only replaces Zarr stores",
    ),
    "zarr_store_over_a_file": (_zarr_over_a_file, None, "is an existing file, not a directory; remove it"),
    "disk_full": (None, _full_disk, "no space left on device.*free some space .*or write the output elsewhere"),
    "disk_full_reported_as_hdf_error": (None, _full_disk_as_hdf_error, "the disk is full .*Free some space"),
    "quota_exceeded": (None, _quota, "quota exceeded.*raise the quota"),
    "read_only_file_system": (None, _read_only, "read-only file system.*location you can write to"),
}


def _output(case, tmp_path, coarse_file, monkeypatch):
    make, fault, fix = OUTPUTS[case]
    if fault is not None:
        fault(monkeypatch)
    output = make(tmp_path, coarse_file) if make is not None else tmp_path / "out.nc"
    source = output if case == "output_is_the_input" else coarse_file
    return source, output, fix


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_python_refuses_bad_output(case, python, coarse_file, tmp_path, monkeypatch):
    source, output, fix = _output(case, tmp_path, coarse_file, monkeypatch)
    assert_refused(lambda: python(source, output), OutputError, fix, tmp_path)


@pytest.mark.parametrize("case", list(OUTPUTS))
def test_cli_refuses_bad_output(case, trained_checkpoint, coarse_file, tmp_path, monkeypatch):
    source, output, fix = _output(case, tmp_path, coarse_file, monkeypatch)
    args = ["downscale", trained_checkpoint, source, "-o", output, "--no-progress"]
    assert_refused_by_cli(args, OutputError, fix, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_folder_is_refused(python, coarse_file, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert_refused(
            lambda: python(coarse_file, folder / "out.nc"), OutputError, "permission denied.*you can write to", tmp_path
        )
    finally:
        folder.chmod(0o755)
