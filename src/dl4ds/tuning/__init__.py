"""Model design by search: ``dl4ds tune`` explores architectures and hyperparameters with Optuna under a budget.

A tuning config is an experiment config with a ``search:`` section
(:class:`SearchOptions`); :class:`Tuner` runs its study (TPE sampling,
pruning on the validation loss, resumable, shared by several workers through
an RDB storage) and verifies the best trial on the test period.
"""

from dl4ds.tuning.options import Choices, PrunerOptions, Range, SamplerOptions, SearchOptions
from dl4ds.tuning.space import SearchSpace
from dl4ds.tuning.tuner import Tuner, TuningResult, load_tuning_config

__all__ = [
    "Choices",
    "PrunerOptions",
    "Range",
    "SamplerOptions",
    "SearchOptions",
    "SearchSpace",
    "Tuner",
    "TuningResult",
    "load_tuning_config",
]
