"""Exceptions raised for problems in the user's data, configuration or checkpoints.

Every message names the problem and how to fix it. The command-line interface
prints these messages without a traceback; any other exception is a bug in dl4ds.
"""


class DL4DSError(Exception):
    """Base class: a problem with user input that the user can fix."""


class DataError(DL4DSError, ValueError):
    """Input data with the wrong dimensions, grids, variables, times or values."""


class ConfigError(DL4DSError, ValueError):
    """An impossible or invalid configuration."""


class CheckpointError(DL4DSError):
    """A checkpoint that cannot be read, or does not fit the data it is applied to."""


class OutputError(DL4DSError, OSError):
    """An output that cannot be written: a directory or file in the way, no permission, a full disk, or the input itself.

    Nothing is left at the destination (see :func:`dl4ds.utils.atomic.atomic_path`).
    """
