"""Write the bundled 4 degree SEAS5 hindcast: the 1 degree one cut to 20 x 52 cells and block-averaged 4 x 4.

    python tools/coarsen_seas5_hindcast.py

The coarse forecast of the hindcast MOS example (configs/hindcast_mos.yaml)
and of examples/forecast_skill.py. Its 5 x 13 cells are 28.5-44.5 N,
10.5 W-37.5 E; every 4 degree cell is the mean of 16 cells of the 1 degree grid
(27-46 N, 12 W-39 E).
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from dl4ds import datasets
from dl4ds.io import write_netcdf

SCALE = 4
OUTPUT = Path(datasets.path("seas5_tas_hindcast")).with_name("seas5_tas_med_hindcast_4deg_2000_2005.nc")


def coarsened() -> xr.Dataset:
    """The 4 degree block means of the bundled 1 degree SEAS5 hindcast (cut to 20 x 52 cells, a multiple of 4)."""
    fine = datasets.seas5_tas_hindcast().drop_vars("valid_time_bnds")
    fine["valid_time"].attrs.pop("bounds", None)
    fine = fine.isel(latitude=slice(0, 5 * SCALE), longitude=slice(0, 13 * SCALE))
    coarse = fine.coarsen(latitude=SCALE, longitude=SCALE).mean(keep_attrs=True).transpose(*fine["tas"].dims).load()
    coarse["valid_time"] = fine["valid_time"]
    coarse.attrs["title"] = "ECMWF SEAS5 monthly 2 m temperature hindcast, block-averaged to 4 degrees (dl4ds)"
    coarse.attrs["geospatial_lat_min"], coarse.attrs["geospatial_lat_max"] = 28.5, 44.5
    coarse.attrs["geospatial_lon_min"], coarse.attrs["geospatial_lon_max"] = -10.5, 37.5
    coarse.attrs["history"] = (
        f"{fine.attrs.get('history', '')} Cut to 27-46 N, 12 W-39 E and block-averaged 4 x 4 to 4 degrees by "
        "dl4ds tools/coarsen_seas5_hindcast.py."
    ).strip()
    return coarse


if __name__ == "__main__":
    write_netcdf(coarsened(), OUTPUT)
    print(f"wrote {OUTPUT}")
