"""The study's results as files: ``trials.csv``, ``summary.json`` and matplotlib figures, all written atomically."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import optuna
import pandas as pd
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from dl4ds.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

FIGURES = ("optimization_history", "param_importances", "slice")

_ATTRIBUTES = ("val_rmse", "val_mae", "val_bias", "val_correlation", "val_crps", "val_loss", "epochs", "best_epoch")


def trials_table(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: number, state, objective value, validation scores, parameters, time, worker and reason.

    ``reason`` says why a trial failed or was pruned, or that it was interrupted
    and retried (``retry_of`` of its successor), or reused a twin's result.
    """
    retried_by = {int(t.user_attrs["retry_of"]): t.number for t in trials if "retry_of" in t.user_attrs}
    names = list(dict.fromkeys(name for t in trials for name in t.params))
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        reason = attrs.get("fail_reason", "")
        if trial.state == TrialState.PRUNED:
            reason = f"pruned after epoch {attrs.get('epochs', '?')}"
        if trial.number in retried_by:
            reason = f"{reason or 'interrupted'}; retried as trial {retried_by[trial.number]}"
        if "duplicate_of" in attrs:
            reason = f"same parameters as trial {attrs['duplicate_of']}; its result reused"
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                **{name: attrs.get(name) for name in _ATTRIBUTES},
                **{name: trial.params.get(name) for name in names},
                "base": bool(attrs.get("base", False)),
                "parameters": attrs.get("parameters"),
                "seconds": None if duration is None else round(duration, 1),
                "started": trial.datetime_start.isoformat(timespec="seconds") if trial.datetime_start else None,
                "worker": attrs.get("worker"),
                "retry_of": attrs.get("retry_of"),
                "reason": reason,
                "folder": attrs.get("folder"),
            }
        )
    return pd.DataFrame(rows)


def write_trials_csv(trials: Sequence[FrozenTrial], path: Path) -> None:
    with atomic_path(path) as temporary:
        trials_table(trials).to_csv(temporary, index=False)


def write_summary(summary: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(summary, indent=2, default=str) + "\n")


def write_figures(study: optuna.Study, directory: Path, objective: str) -> list[Path]:
    """Optimisation history, parameter importances (PED-ANOVA) and slice plots of the finished trials, as PNG.

    A figure that the trials cannot support yet (importances need a few
    finished trials with different values) is left out and logged.
    """
    written = []
    plots = {
        "optimization_history": lambda: optuna.visualization.matplotlib.plot_optimization_history(
            study, target_name=objective
        ),
        "param_importances": lambda: optuna.visualization.matplotlib.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target_name=objective
        ),
        "slice": lambda: optuna.visualization.matplotlib.plot_slice(study, target_name=objective),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, plot in plots.items():
        # Optuna sets its own style sheet: keep it from leaking into later figures.
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", ExperimentalWarning)  # Optuna's matplotlib backend
            warnings.simplefilter("ignore", UserWarning)  # axis limits of a parameter with one value so far
            try:
                plot()
            except (ValueError, RuntimeError, ZeroDivisionError) as error:
                logger.info("no %s figure yet: %s", name.replace("_", " "), error)
                plt.close("all")
                continue
            figure = plt.gcf()  # the one Optuna drew
            path = directory / f"{name}.png"
            with atomic_path(path) as temporary:
                figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
            plt.close(figure)
        written.append(path)
    return written
