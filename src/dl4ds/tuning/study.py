"""The Optuna study that several workers share: storage, sampler, pruner, the lock around new trials, retries.

Workers (processes, Slurm array tasks, machines) share a study through an RDB
storage. Each new trial is asked for under a file lock held by the workers of
one machine, after counting the study's trials, so together they run exactly
the number asked for (workers on several machines without a common lock may
start one surplus trial each at the very end). A trial whose worker died is
failed and its parameters queued again (``retry_of``), and the retry resumes
the dead trial's training from its checkpoint: dead local workers are found
by their process id at once, others when their heartbeat stops.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from dl4ds.errors import ConfigError
from dl4ds.tuning.options import PrunerOptions, SamplerOptions

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60
"""How often a running trial tells the storage it is alive."""
GRACE_SECONDS = 300
"""How long a trial may go without a heartbeat before another worker fails and retries it."""

WORKER = f"{socket.gethostname()}:{os.getpid()}"
"""This process, as trials record the worker that ran them (``host:pid``)."""


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The RDB storage at ``url`` with heartbeats (SQLite waits up to a minute for a lock held by another worker).

    Raises:
        ConfigError: a URL that SQLAlchemy cannot open.
    """
    engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats: experimental since Optuna 2.9
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=_retry_stale,
            )
    except Exception as error:  # SQLAlchemy's errors for bad URLs, missing drivers, unreachable servers
        raise ConfigError(
            f"cannot open the study storage {url!r}: {error}; give an RDB URL such as sqlite:///study.db or "
            "postgresql://user:password@host/database (its driver installed)"
        ) from None


def open_study(storage: optuna.storages.RDBStorage, name: str, pruner: PrunerOptions) -> tuple[optuna.Study, bool]:
    """The study ``name`` in ``storage`` (minimising), and whether this call created it."""
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction="minimize", pruner=create_pruner(pruner)
        )
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name, pruner=create_pruner(pruner))
        if study.direction != optuna.study.StudyDirection.MINIMIZE:
            raise ConfigError(f"study {name!r} in the storage does not minimise; choose another --study name") from None
        return study, False


def create_pruner(options: PrunerOptions) -> optuna.pruners.BasePruner:
    """The pruner ``options`` name, stopping no trial before epoch ``min_epochs``."""
    if options.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options.startup_trials, n_warmup_steps=options.min_epochs - 1
        )
    if options.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=options.min_epochs, reduction_factor=options.reduction_factor
        )
    return optuna.pruners.NopPruner()


def create_sampler(options: SamplerOptions, trial_number: int, *, local_lock: bool) -> optuna.samplers.TPESampler:
    """A TPE sampler for the trial about to be asked for, seeded by ``options.seed`` and its number.

    Seeding per trial makes a one-worker study repeatable and gives
    simultaneous workers different random streams. Without a lock shared by
    all workers, two could ask at the same count, so the process is mixed in.
    """
    entropy = [options.seed, trial_number] + ([] if local_lock else [os.getpid(), hash(socket.gethostname()) % 2**31])
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # multivariate and group: stable in practice
        return optuna.samplers.TPESampler(
            n_startup_trials=options.startup_trials,
            multivariate=True,
            group=True,
            constant_liar=True,
            seed=seed,
        )


def retry_trial(study: optuna.Study, number: int, params: Mapping[str, Any]) -> None:
    """Queue the parameters of the interrupted trial ``number`` again, as a trial that resumes its training."""
    study.enqueue_trial(dict(params), user_attrs={"retry_of": number})
    logger.warning("trial %d was interrupted; it is queued again and resumes from its checkpoint", number)


def _retry_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's callback for a trial failed because its heartbeat stopped."""
    retry_trial(study, trial.number, trial.params)


def retried(study: optuna.Study) -> set[int]:
    """Numbers of the trials that were interrupted and queued again."""
    return {int(t.user_attrs["retry_of"]) for t in study.get_trials(deepcopy=False) if "retry_of" in t.user_attrs}


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards the study's total: all, less those that were interrupted and retried."""
    return len(study.get_trials(deepcopy=False)) - len(retried(study))


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail and retry the running trials whose worker, on this machine, no longer exists; returns their numbers."""
    host = socket.gethostname()
    again = retried(study)
    dead = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(trial.user_attrs.get("worker", ""))
        name, _, pid = worker.rpartition(":")
        if name != host or not pid.isdigit() or _alive(int(pid)) or trial.number in again:
            continue
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        retry_trial(study, trial.number, trial.params)
        dead.append(trial.number)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM  # exists, owned by another user
    return True


def sqlite_path(url: str) -> Path | None:
    """The database file of an ``sqlite:///PATH`` URL, None for other storages (or an in-memory database)."""
    prefix = "sqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) and len(url) > len(prefix) else None


class AskLock:
    """An exclusive lock between the workers of one machine, held while one counts the trials and asks for a new one.

    A file lock (``flock``) on ``path``; :meth:`release` may be called early
    (by the trial, once it has been created) and again at the end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a")
        fcntl.flock(self._handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @contextlib.contextmanager
    def held(self) -> Iterator[AskLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()
