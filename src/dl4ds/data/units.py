"""Physical units, understood rather than compared: parsed and converted with pint and cf-xarray's CF registry.

Units are read from each variable's CF ``units`` attribute. Two spellings of
one unit (``K``, ``kelvin``; ``1``, ``kg kg-1``) are the same unit, and
convertible units are converted: ``degC`` and ``K``, ``hPa`` and ``Pa``, and,
with the water-density convention below, precipitation rates and amounts:

    1 mm/day of liquid water = 1 kg m-2 day-1 = 1/86400 kg m-2 s-1, and 1 mm = 1 kg m-2,

that is a depth of liquid water times :data:`WATER_DENSITY` (1000 kg m-3) is a
mass per area. Conversions are affine (``a * x + b``), computed in float64 and
cast back to the data's dtype, and stay lazy on dask-backed data.

Missing or unreadable units next to declared ones, and units of different
quantities, are a :class:`~dl4ds.errors.DataError` that names both sides and
how to set the units (:func:`with_units`; in a configuration ``units:`` on the
data source; on the command line ``--units NAME=UNITS``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import xarray as xr

from dl4ds.errors import DataError

if TYPE_CHECKING:
    import pint
    from pint.facets.plain import PlainQuantity

logger = logging.getLogger(__name__)

ArrayLike = TypeVar("ArrayLike", xr.DataArray, np.ndarray)

WATER_DENSITY = 1000.0
"""kg m-3: the density that turns a depth (rate) of liquid water into a mass per area (rate), e.g. mm/day <-> kg m-2 s-1."""

HOW_TO_SET = (
    "set the units of the data: `units: {{{name}: UNITS}}` on the data source in the configuration, "
    "--units {name}=UNITS on the command line, or dl4ds.data.with_units(ds, {{'{name}': 'UNITS'}}) in Python"
)


@functools.cache
def registry() -> pint.UnitRegistry:
    """cf-xarray's pint registry of CF units (``kg m-2 s-1``, ``degC``, ``1``...), loaded on first use.

    pint's notes on the CF definitions replacing its own are kept out of the log.
    """
    pint_log = logging.getLogger("pint.util")
    level = pint_log.level
    pint_log.setLevel(logging.ERROR)
    try:
        from cf_xarray.units import units
    finally:
        pint_log.setLevel(level)
    return units


@functools.cache
def _water_context() -> Any:
    """The pint context converting depths of liquid water (and their rates) to masses per area, at WATER_DENSITY."""
    import pint

    density = registry().Quantity(WATER_DENSITY, "kg m-3")

    def to_mass(ureg: pint.UnitRegistry[Any], value: PlainQuantity[Any], **kwargs: Any) -> PlainQuantity[Any]:
        return value * density

    def to_depth(ureg: pint.UnitRegistry[Any], value: PlainQuantity[Any], **kwargs: Any) -> PlainQuantity[Any]:
        return value / density

    context = pint.Context("dl4ds_liquid_water")
    for depth, mass in (
        ("[length]", "[mass] / [length] ** 2"),
        ("[length] / [time]", "[mass] / [length] ** 2 / [time]"),
    ):
        context.add_transformation(depth, mass, to_mass)
        context.add_transformation(mass, depth, to_depth)
    return context


def units_of(obj: xr.DataArray) -> str | None:
    """The ``units`` attribute of ``obj`` as a string, None if absent or empty."""
    value = obj.attrs.get("units")
    return None if value is None or str(value).strip() == "" else str(value).strip()


def parse(units: str, *, what: str) -> pint.Unit:
    """The pint unit ``units`` spells; :class:`DataError` naming ``what`` (e.g. ``"the coarse variable 'ts'"``) if none."""
    try:
        return registry().Unit(units)
    except Exception as error:  # pint raises several types (UndefinedUnitError, ValueError, AssertionError...)
        raise DataError(
            f"{what} has units {units!r}, which are not units dl4ds can read (CF/UDUNITS spellings such as 'K', "
            f"'degC', 'kg m-2 s-1', 'mm/day', '1'; {type(error).__name__}: {error}); " + HOW_TO_SET.format(name="NAME")
        ) from None


@dataclass(frozen=True)
class Conversion:
    """``converted = scale * value + offset``, from ``source`` units to ``target`` units."""

    source: str
    target: str
    scale: float
    offset: float

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def describe(self) -> str:
        """The conversion as a formula of the value ``x``, e.g. ``x + 273.15`` or ``1.15741e-05 * x``."""
        formula = "x" if self.scale == 1.0 else f"{self.scale:.6g} * x"
        return formula + (f" {'+' if self.offset > 0 else '-'} {abs(self.offset):.6g}" if self.offset else "")

    def apply(self, values: ArrayLike) -> ArrayLike:
        """``values`` converted, computed in float64 and cast back to their (floating) dtype; lazy stays lazy.

        A DataArray keeps its attributes, with ``units`` set to the target.
        """
        if isinstance(values, xr.DataArray):
            converted = values if self.identity else self.apply_array(values)
            return converted.assign_attrs({**values.attrs, "units": self.target})
        return values if self.identity else self.apply_array(values)

    def apply_array(self, values: ArrayLike) -> ArrayLike:
        dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.dtype(np.float64)
        return (values.astype(np.float64) * self.scale + self.offset).astype(dtype)


def conversion(source: str, target: str, *, what: str, reference: str) -> Conversion:
    """The conversion from ``source`` to ``target`` units.

    Args:
        source, target: unit strings (CF/UDUNITS or pint spellings).
        what, reference: the two sides, for messages, e.g. ``"the coarse variable 'ts'"`` and ``"the target 't2m'"``.

    Raises:
        DataError: a unit that cannot be read, or units of different quantities (naming both).
    """
    if source == target:
        return Conversion(source, target, 1.0, 0.0)
    ureg = registry()
    source_unit, target_unit = parse(source, what=what), parse(target, what=reference)
    try:
        zero, one = (
            float(ureg.Quantity(x, source_unit).to(target_unit, _water_context()).magnitude) for x in (0.0, 1.0)
        )
    except Exception as error:  # pint.DimensionalityError, or an offset unit in a product
        raise DataError(
            f"{what} is in {source!r} but {reference} is in {target!r}, and these measure different quantities "
            f"({error}); check that the right variables are paired, or correct the units: {HOW_TO_SET.format(name='NAME')}"
        ) from None
    scale = float(f"{one - zero:.14g}")  # 274.15 - 273.15 is 1 - 2e-14 in floating point: 1
    return Conversion(source, target, scale, zero)


def conform(
    values: xr.DataArray,
    target: str | None,
    *,
    what: str,
    reference: str,
    names: tuple[Hashable, Hashable],
    hint: str = HOW_TO_SET,
) -> tuple[xr.DataArray, Conversion | None]:
    """``values`` converted to the ``target`` units of ``reference``, and the conversion (None when none was needed).

    Args:
        values: a variable with its CF attributes.
        target: the units wanted, None if the reference declares none.
        what, reference: the two sides, for messages and the log line.
        names: the variable names of the two sides, for the hint of how to set units.
        hint: how to set units, with ``{name}`` for the variable's name (default :data:`HOW_TO_SET`).

    Both without units: taken as they are. One side without units: a
    :class:`DataError` naming both and how to set units (:data:`HOW_TO_SET`).
    A conversion is logged.
    """
    source = units_of(values)
    if source is None and target is None:
        return values, None
    if source is None or target is None:
        missing, declared, units, name = (
            (what, reference, target, names[0]) if source is None else (reference, what, source, names[1])
        )
        raise DataError(
            f"{missing} has no units but {declared} is in {units!r}, so dl4ds cannot tell whether they agree; "
            + hint.format(name=name)
        )
    change = conversion(source, target, what=what, reference=reference)
    if change.identity:
        return (values if source == target else values.assign_attrs(units=target)), None
    logger.info("converted %s from %r to %r (%s), the units of %s", what, source, target, change.describe(), reference)
    return change.apply(values), change


def with_units(ds: xr.Dataset, units: Mapping[str, str], *, role: str = "data") -> xr.Dataset:
    """A copy of ``ds`` whose variables named in ``units`` get those ``units`` attributes (set or overridden).

    A name may carry a level (``ta@850hPa``): its variable (``ta``) is meant.
    The values are not changed: this declares what units the data is in.

    Raises:
        DataError: a name that is no variable of ``ds``, or units that cannot be read.
    """
    if not units:
        return ds
    missing = [name for name in units if name.partition("@")[0] not in ds.variables]
    if missing:
        raise DataError(
            f"cannot set the units of {missing}: the {role} data has no such variable "
            f"(it has {sorted(map(str, ds.data_vars))})"
        )
    ds = ds.copy()
    for name, value in units.items():
        variable = name.partition("@")[0]
        parse(value, what=f"the units given for the {role} variable {variable!r}")
        ds[variable] = ds[variable].assign_attrs(units=value)
    return ds
