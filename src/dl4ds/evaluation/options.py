"""Options of ``dl4ds evaluate`` about the files it reads, declared once: the command's options are generated from them."""

from __future__ import annotations

from pydantic import Field

from dl4ds.utils.options import Options


class EvaluateInputOptions(Options):
    """How the prediction and the truth files are read."""

    units: dict[str, str] = Field(
        default_factory=dict,
        description="units of prediction variables, set or overriding the file's, e.g. t2m to degC; the prediction "
        "is converted to the truth's units",
    )
    truth_units: dict[str, str] = Field(
        default_factory=dict, description="units of truth variables, set or overriding the file's, e.g. pr to mm/day"
    )
