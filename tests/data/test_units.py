"""Units parsed and converted (pint, cf-xarray), at pairing: against hand conversions, and the errors for missing or wrong units."""

import numpy as np
import pytest
import xarray as xr

from dl4ds.data import MOS, PerfectProg, units, with_units
from dl4ds.errors import DataError


@pytest.mark.parametrize(
    ("source", "target", "value", "expected"),
    [
        ("degC", "K", 15.0, 288.15),
        ("K", "degC", 273.15, 0.0),
        ("kelvin", "K", 280.0, 280.0),
        ("mm/day", "kg m-2 s-1", 86.4, 1e-3),  # 86.4 mm of water a day = 86.4 kg m-2 / 86400 s (1000 kg m-3)
        ("kg m-2 s-1", "mm day-1", 1e-3, 86.4),
        ("mm", "kg m-2", 5.0, 5.0),
        ("m s-1", "mm/day", 1e-8, 0.864),  # a liquid-water rate
        ("1", "kg kg-1", 0.004, 0.004),
        ("%", "1", 40.0, 0.4),
        ("hPa", "Pa", 850.0, 85000.0),
    ],
)
def test_conversions_match_hand_computations(source, target, value, expected):
    change = units.conversion(source, target, what="a", reference="b")
    assert change.apply(np.array([value])) == pytest.approx([expected], rel=1e-12, abs=1e-12)


def test_spellings_of_one_unit_need_no_conversion():
    for source, target in (("kelvin", "K"), ("kg kg-1", "1"), ("mm day-1", "mm/day")):
        assert units.conversion(source, target, what="a", reference="b").identity


def test_incompatible_and_unreadable_units_name_both_sides():
    with pytest.raises(DataError, match="the coarse 'pr' is in 'K' but the target 'pr' is in 'kg m-2 s-1'.*different"):
        units.conversion("K", "kg m-2 s-1", what="the coarse 'pr'", reference="the target 'pr'")
    with pytest.raises(DataError, match="'Kelvins', which are not units dl4ds can read.*units:"):
        units.conversion("Kelvins", "K", what="the coarse 'ts'", reference="the target 't2m'")


def test_with_units_sets_and_overrides_without_touching_values():
    ds = xr.Dataset({"t2m": ("x", np.array([1.0, 2.0]), {"units": "K"}), "q": ("x", np.array([0.1, 0.2]))})
    labelled = with_units(ds, {"t2m": "degC", "q": "kg kg-1"})
    assert labelled["t2m"].attrs["units"] == "degC" and labelled["q"].attrs["units"] == "kg kg-1"
    assert ds["t2m"].attrs["units"] == "K" and "units" not in ds["q"].attrs  # the input is not modified
    np.testing.assert_array_equal(labelled["t2m"].values, ds["t2m"].values)
    with pytest.raises(DataError, match=r"cannot set the units of \['t'\]"):
        with_units(ds, {"t": "K"})
    with pytest.raises(DataError, match="not units dl4ds can read"):
        with_units(ds, {"t2m": "degrees Kelvinish"})


def test_mos_converts_the_coarse_data_to_the_target_units_like_by_hand(era5_week, caplog):
    coarse = PerfectProg(scale=4).pair(era5_week).input_dataset()
    celsius = coarse.copy()
    celsius["t2m"] = (coarse["t2m"] - 273.15).assign_attrs(units="degC")
    by_hand = celsius.copy()
    by_hand["t2m"] = (celsius["t2m"] + 273.15).assign_attrs(units="K")
    with caplog.at_level("INFO", logger="dl4ds"):
        converted = MOS().pair(era5_week, celsius)
    assert "converted the coarse variable 't2m' from 'degC' to 'K' (x + 273.15)" in caplog.text
    np.testing.assert_allclose(converted.inputs.values, MOS().pair(era5_week, by_hand).inputs.values, rtol=0, atol=1e-5)
    assert converted.attrs["t2m"]["units"] == "K"


def test_mos_refuses_missing_and_incompatible_units(era5_week):
    coarse = PerfectProg(scale=4).pair(era5_week).input_dataset()
    unlabelled = coarse.copy()
    unlabelled["t2m"].attrs = {}
    with pytest.raises(
        DataError, match=r"coarse variable 't2m' has no units but the target 't2m' is in 'K'.*units: \{t2m"
    ):
        MOS().pair(era5_week, unlabelled)
    assert MOS().pair(era5_week, with_units(unlabelled, {"t2m": "K"})).attrs["t2m"]["units"] == "K"
    wrong = with_units(unlabelled, {"t2m": "mm/day"})
    with pytest.raises(DataError, match="'mm/day' but the target 't2m' is in 'K'.*different quantities"):
        MOS().pair(era5_week, wrong)
