"""Atomic writes: existing files and Zarr stores are replaced whole, stale temporaries of killed runs are removed."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from helpers import make_field

from dl4ds.io import open_data, write_netcdf, write_zarr
from dl4ds.utils.atomic import STALE_AFTER, atomic_path, new_temporary, remove_stale_temporaries


def _dataset(value: float) -> xr.Dataset:
    return make_field(np.full((3, 4, 5), value)).to_dataset()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("writer", [write_netcdf, write_zarr])
def test_an_existing_output_is_replaced_whole(writer, tmp_path):
    path = tmp_path / ("out.zarr" if writer is write_zarr else "out.nc")
    writer(_dataset(1.0), path)
    writer(_dataset(2.0).isel(time=[0]), path)
    with open_data(path) as written:
        assert written.sizes["time"] == 1
        assert float(written["t2m"].max()) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "no temporary or old copy is left"


@pytest.mark.filterwarnings("ignore:Failed to open Zarr store with consolidated metadata")
def test_zarr_v3_input_is_written_to_zarr_and_netcdf(tmp_path):
    _dataset(3.0).chunk({"time": 1}).to_zarr(tmp_path / "v3.zarr", zarr_format=3, consolidated=False)
    source = open_data(tmp_path / "v3.zarr")
    assert "serializer" in source["t2m"].encoding  # a Zarr v3 codec that Zarr v2 and NetCDF refuse
    write_zarr(source, tmp_path / "out.zarr")
    write_netcdf(source, tmp_path / "out.nc")
    for name in ("out.zarr", "out.nc"):
        with open_data(tmp_path / name) as written:
            np.testing.assert_array_equal(written["t2m"].values, 3.0)
    assert source["t2m"].encoding, "the input's own encoding is left alone"


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    destination = tmp_path / "out.nc"
    host = new_temporary(destination).name.split(".tmp-")[1].rsplit("-", 2)[0]
    old = time.time() - STALE_AFTER - 60
    entries = {
        f".out.nc.tmp-{host}-{_dead_pid()}-abcd1234": True,  # a killed process of this host
        f".out.nc.old-{host}-{_dead_pid()}-abcd1234": True,  # a store being replaced when the process died
        f".out.nc.tmp-{host}-{os.getpid()}-abcd1234": False,  # this process: still writing
        ".out.nc.tmp-otherhost-12-abcd1234": False,  # another host, recently changed: may still be writing
        ".out.nc.tmp-otherhost-13-abcd1234 ": False,  # not a dl4ds name (trailing space)
        ".out.nc.tmp-k2x9_q1a": False,  # written by dl4ds 0.1.0, recently
        ".other.nc.tmp-k2x9_q1a": False,  # another destination's
        ".out.nc.backup": False,  # not a temporary
    }
    for name in entries:
        (tmp_path / name).write_text("partial")
    for name in (".out.nc.tmp-otherhost-14-abcd1234", ".out.nc.tmp-zz81_abc"):  # old: another host's, and 0.1.0's
        (tmp_path / name).mkdir()
        (tmp_path / name / "chunk").write_text("partial")
        for path in (tmp_path / name / "chunk", tmp_path / name):
            os.utime(path, (old, old))
        entries[name] = True
    removed = remove_stale_temporaries(destination)
    assert sorted(p.name for p in removed) == sorted(name for name, stale in entries.items() if stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name for name, stale in entries.items() if not stale)


def test_a_write_cleans_up_after_a_killed_run(tmp_path):
    destination = tmp_path / "out.nc"
    host = new_temporary(destination).name.split(".tmp-")[1].rsplit("-", 2)[0]
    left = tmp_path / f".out.nc.tmp-{host}-{_dead_pid()}-zzzz0000"
    left.write_text("half a file")
    write_netcdf(_dataset(1.0), destination)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def test_a_failed_write_leaves_the_old_output(tmp_path):
    destination = tmp_path / "out.nc"
    destination.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(destination) as temporary:
        temporary.write_text("new, half")
        raise RuntimeError("interrupted")
    assert destination.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]
