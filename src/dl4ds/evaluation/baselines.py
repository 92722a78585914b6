"""Deprecated since dl4ds 0.2: this is :mod:`dl4ds.baselines`; the old name goes in dl4ds 0.3."""

from dl4ds.utils.deprecation import alias_module

alias_module("dl4ds.evaluation.baselines", "dl4ds.baselines")
