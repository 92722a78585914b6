"""Writes tests/data/legacy_v0.1.0_*.pt with dl4ds 0.1.0 (commit 40e0b0b) and the outputs they must give.

Run with the 0.1.0 sources on the path: PYTHONPATH=/tmp/head/src python /tmp/make_legacy_checkpoint.py OUT_DIR
"""

import sys
from pathlib import Path

import torch
import xarray as xr

import dl4ds
from dl4ds.checkpoint import load_model, save_checkpoint
from dl4ds.data import DownscalingDataset, Normalizer, PerfectProg
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer

out = Path(sys.argv[1])
assert dl4ds.__version__ == "0.1.0"
era5 = dl4ds.datasets.era5_t2m_uk().sel(time=slice("2019-03-01", "2019-03-02")).isel(time=slice(None, None, 6))
static = dl4ds.datasets.uk_static()
pairs = PerfectProg(scale=4).pair(era5, static=static)
normalizer = Normalizer.fit(pairs)
coarse = xr.Dataset({"t2m": pairs.inputs.sel(channel="t2m", drop=True).isel(time=slice(0, 2)).assign_attrs(units="K")})
coarse.to_netcdf(out / "legacy_input.nc")
outputs = {}
for name, params in (
    ("resnet_spc", {"n_filters": 8, "n_blocks": 1}),
    ("unet_pin", {"n_filters": 4, "depth": 2, "localized": True}),
    ("convnet_spc", {"n_filters": 8, "n_blocks": 1, "noise_channels": 2}),
):
    torch.manual_seed(0)
    model = DownscalingModel.build(name, pairs, normalizer, params=params, config={"note": "written by dl4ds 0.1.0"})
    SupervisedTrainer(epochs=1, batch_size=4, progress=False).fit(model, DownscalingDataset(pairs, normalizer))
    path = out / f"legacy_v0.1.0_{name}.pt"
    save_checkpoint(path, model)
    loaded = load_model(path)
    samples = 3 if loaded.stochastic else 1
    fine = dl4ds.downscale(loaded, coarse, samples=samples, seed=7)
    outputs[name] = fine["t2m"].rename(f"t2m_{name}")
    print(name, path.stat().st_size, "bytes", float(fine["t2m"].mean()))
xr.merge(
    [
        v.drop_vars("sample", errors="ignore").rename({"sample": f"sample_{k}"} if "sample" in v.dims else {})
        for k, v in outputs.items()
    ],
    compat="override",
).to_netcdf(out / "legacy_v0.1.0_outputs.nc")
