"""Data that cannot be paired or turned into samples is refused with the exact error and the fix (Python API).

The same problems reach the command line through ``dl4ds train`` (tests/experiment/test_bad_input_config.py).
"""

from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from helpers import assert_refused, make_field

from dl4ds.data import MOS, DownscalingDataset, Normalizer, PerfectProg
from dl4ds.data.torch_dataset import cell_weights
from dl4ds.errors import ConfigError, DataError

RNG = np.random.default_rng(2)
TARGET = make_field(280 + RNG.standard_normal((8, 16, 24)))
COARSE = TARGET.coarsen(latitude=4, longitude=4).mean()
STATIC = TARGET.isel(time=0, drop=True).rename("elevation").to_dataset()


def _pairs():
    return PerfectProg(scale=4).pair(TARGET)


CASES = {
    "target_all_nan": (partial(PerfectProg(4).pair, TARGET.where(TARGET > 1e9)), DataError, "entirely NaN; check"),
    "unnamed_data_array": (partial(PerfectProg(4).pair, TARGET.rename(None)), DataError, r"give it one with .rename"),
    "extra_dimension": (
        partial(PerfectProg(4).pair, TARGET.expand_dims(level=[850, 500], axis=1)),
        DataError,
        r"select one value of \['level'\] first",
    ),
    "scale_larger_than_domain": (
        partial(PerfectProg(12).pair, TARGET),
        DataError,
        "leaves 1 x 2 coarse cells.*at most 8",
    ),
    "mos_scale_larger_than_domain": (
        partial(MOS(32).pair, TARGET, COARSE),
        DataError,
        "leaves 0 x 0 coarse cells.*at most 8",
    ),
    "not_divisible_without_crop": (
        partial(PerfectProg(5, crop=False).pair, TARGET),
        DataError,
        "not divisible by scale 5; enable cropping",
    ),
    "static_variable_missing": (
        partial(PerfectProg(4).pair, TARGET, static=STATIC, static_variables=["orog"]),
        DataError,
        "no variable 'orog'.*Choose one of those",
    ),
    "predictors_missing_times": (
        partial(PerfectProg(4).pair, TARGET, predictors=TARGET.isel(time=slice(0, 4)).rename("msl")),
        DataError,
        "lack 4 of the target's time steps.*provide predictors for every target time",
    ),
    "mos_without_common_times": (
        partial(MOS(4).pair, TARGET, COARSE.assign_coords(time=COARSE["time"] + np.timedelta64(400, "D"))),
        DataError,
        "share no time step.*covering the same period",
    ),
    "mos_variable_count": (
        partial(MOS(4).pair, TARGET, COARSE, coarse_variables=["t2m", "t2m"]),
        ConfigError,
        "give one coarse variable per target variable",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_pairing_refuses_bad_data(case, tmp_path):
    call, error, fix = CASES[case]
    assert_refused(call, error, fix, tmp_path)


SAMPLES = {
    "patch_size_0": ({"patch_size": (0, 0)}, "must be a positive multiple of the scale 4.*e.g. 64 x 64"),
    "patch_not_a_multiple": ({"patch_size": (6, 8)}, "must be a positive multiple of the scale 4"),
    "patch_larger_than_domain": ({"patch_size": (32, 32)}, "larger than the domain 16 x 24; use a smaller patch_size"),
    "time_window_too_long": ({"time_window": 9}, "time_window=9 does not fit the 8 time steps"),
    "cell_weights_shape": ({"cell_weights": np.ones((4, 4))}, "cell_weights must be non-negative numbers"),
    "negative_cell_weights": ({"cell_weights": -np.ones((16, 24))}, "cell_weights must be non-negative numbers"),
}


@pytest.mark.parametrize("case", list(SAMPLES))
def test_samples_refuse_impossible_options(case, tmp_path):
    options, fix = SAMPLES[case]
    pairs = _pairs()
    assert_refused(lambda: DownscalingDataset(pairs, Normalizer.fit(pairs), **options), ConfigError, fix, tmp_path)


def test_a_loss_region_outside_the_static_fields_is_refused(tmp_path):
    pairs = PerfectProg(4).pair(TARGET, static=STATIC)
    assert_refused(
        lambda: cell_weights(pairs, region="land_fraction", region_min=0.5),
        ConfigError,
        "not among the static",
        tmp_path,
    )
    assert_refused(
        lambda: cell_weights(replace(pairs), region="elevation", region_min=1e6), ConfigError, "widen", tmp_path
    )
