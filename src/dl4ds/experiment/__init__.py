"""Experiments: a YAML configuration (:class:`ExperimentConfig`) run end to end by :class:`Experiment`.

Pair the configured data, train the configured network, verify it on the test
period against the baseline ladder; :func:`run_demo` is the packaged example.
"""

from dl4ds.experiment.config import ExperimentConfig
from dl4ds.experiment.runner import Experiment, ExperimentResult

__all__ = ["Experiment", "ExperimentConfig", "ExperimentResult"]
