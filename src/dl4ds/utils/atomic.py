"""Atomic file writing: a destination either keeps its old content or gets the complete new one.

Everything is written under a hidden temporary name beside the destination,
``.NAME.tmp-HOST-PID-RANDOM``, and moved into place when complete. A run
killed half-way leaves such a temporary behind; the next write to the same
destination removes it once it is stale (:func:`remove_stale_temporaries`).
File-system faults (a directory in the way, no permission, a full disk)
become :class:`~dl4ds.errors.OutputError` messages naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from dl4ds.errors import DL4DSError, OutputError

logger = logging.getLogger(__name__)

STALE_AFTER = 24 * 3600.0
"""Seconds after its last change when a temporary whose writer cannot be checked (another host) counts as stale."""

FULL_DISK_BYTES = 1 << 20
"""Free bytes below which a failed write is reported as a full disk."""

_WRITE_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?P<writer>.+)")
_WRITER = re.compile(r"(?P<host>.+)-(?P<pid>\d+)-[A-Za-z0-9_]+")


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; move it into place on success.

    Write the file (or, with ``directory``, the directory, e.g. a Zarr store)
    at the yielded path. If the block raises, or the process dies, the
    temporary is removed (or left under its hidden name, for a later write to
    remove) and ``destination`` is untouched. An existing file is replaced;
    with ``directory`` an existing directory is replaced as a whole (the
    caller checks that it is the kind of directory it may replace).

    Raises:
        OutputError: a directory where a file is to go (or a file where a
            directory is), a parent that cannot be created or written, or a
            write that fails for lack of space, quota or permission.
    """
    destination = Path(destination)
    if destination.is_dir() and not directory:
        raise OutputError(
            f"the output {str(destination)!r} is an existing directory; give the path of a file to write, "
            f"e.g. {str(destination / 'output.nc')!r}"
        )
    if directory and destination.exists() and not destination.is_dir():
        raise OutputError(
            f"the output {str(destination)!r} is an existing file, not a directory; remove it or choose another path"
        )
    make_directory(destination.parent, what="output")
    remove_stale_temporaries(destination)
    temporary = new_temporary(destination)
    try:
        try:
            yield temporary
        except Exception as error:
            fault = _write_fault(error, destination)
            if fault is not None:
                raise fault from error
            raise
        _move_into_place(temporary, destination)
    except BaseException:
        _remove(temporary)
        raise


def make_directory(path: str | os.PathLike[str], *, what: str = "output") -> Path:
    """Create the directory ``path`` (and its parents) if needed.

    Raises:
        OutputError: a file is in the way, or the directory cannot be created.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        file = next((parent for parent in (path, *path.parents) if parent.exists() and not parent.is_dir()), path)
        raise OutputError(
            f"cannot create the {what} directory {str(path)!r}: {str(file)!r} is a file, not a directory; remove it "
            "or choose another path"
        ) from None
    except OSError as error:
        raise OutputError(
            f"cannot create the {what} directory {str(path)!r} ({_reason(error)}); choose a location you can write to"
        ) from None
    return path


def new_temporary(destination: str | os.PathLike[str]) -> Path:
    """A new, unused hidden path ``.NAME.tmp-HOST-PID-RANDOM`` beside ``destination`` (nothing is created there).

    Raises:
        OutputError: the folder cannot be written.
    """
    destination = Path(destination)
    prefix = f".{destination.name}.tmp-{_writer()}-"
    try:
        handle, name = tempfile.mkstemp(prefix=prefix, dir=destination.parent)
    except OSError as error:
        raise OutputError(
            f"cannot write in {str(destination.parent)!r} ({_reason(error)}); choose an output location you can "
            "write to"
        ) from None
    os.close(handle)
    temporary = Path(name)
    temporary.unlink()
    return temporary


def remove_stale_temporaries(destination: str | os.PathLike[str], *, max_age: float = STALE_AFTER) -> list[Path]:
    """Remove the temporaries of ``destination`` left behind by writers that died; returns those removed.

    Only dl4ds's own hidden ``.NAME.tmp-*`` (and ``.NAME.old-*``, an earlier
    store being replaced) beside ``destination`` are considered. One written
    by a process of this host is stale once that process is gone; one from
    another host (a shared file system), or without a writer in its name
    (dl4ds 0.1.0), once nothing in it has changed for ``max_age`` seconds.
    """
    destination = Path(destination)
    removed: list[Path] = []
    try:
        entries = list(destination.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or match["name"] != destination.name:
            continue
        reason = _stale(entry, match["writer"], max_age)
        if reason is not None:
            _remove(entry)
            if not entry.exists():
                logger.info("removed %s, a temporary left by a killed run (%s)", entry, reason)
                removed.append(entry)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def _writer() -> str:
    """``HOST-PID`` of this process, for temporary names."""
    return f"{_host()}-{os.getpid()}"


def _stale(entry: Path, writer: str, max_age: float) -> str | None:
    """Why the temporary ``entry`` written by ``writer`` is stale, or None if its writer may still be at work."""
    match = _WRITER.fullmatch(writer)
    if match is not None and match["host"] == _host():
        pid = int(match["pid"])
        return None if _running(pid) else f"process {pid} on this host is gone"
    age = time.time() - _last_change(entry)
    return f"unchanged for {age / 3600:.0f} h" if age > max_age else None


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _last_change(entry: Path) -> float:
    """The latest modification time of ``entry`` and, for a directory, of its entries (a Zarr store's arrays)."""
    try:
        times = [entry.lstat().st_mtime]
        if entry.is_dir() and not entry.is_symlink():
            times.extend(child.lstat().st_mtime for child in entry.iterdir())
    except OSError:  # vanished or unreadable: not ours to judge
        return time.time()
    return max(times)


def _move_into_place(temporary: Path, destination: Path) -> None:
    """``os.replace``, also over an existing directory: the old one is moved aside, then removed."""
    if not (temporary.is_dir() and destination.is_dir() and not destination.is_symlink()):
        os.replace(temporary, destination)
        return
    old = Path(str(temporary).replace(".tmp-", ".old-", 1))
    os.replace(destination, old)
    try:
        os.replace(temporary, destination)
    except BaseException:
        os.replace(old, destination)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_fault(error: Exception, destination: Path) -> OutputError | None:
    """The :class:`OutputError` for a write into ``destination``'s temporary that failed because of the file system.

    OSErrors of lack of space, quota, file size or permission qualify, and so
    does any error (the NetCDF library reports a full disk as an HDF error)
    raised while the disk holding ``destination`` is full.
    """
    if isinstance(error, DL4DSError):  # a problem of the data being written, already explained
        return None
    try:
        free = shutil.disk_usage(destination.parent).free
    except OSError:
        free = None
    if free is not None and free < FULL_DISK_BYTES:
        return OutputError(
            f"cannot write {str(destination)!r}: the disk is full ({free // 1024} KiB free; "
            f"{type(error).__name__}: {error}). Free some space or write the output elsewhere"
        )
    if isinstance(error, OSError) and error.errno in _WRITE_FAULTS:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            fix = "free some space (or raise the quota or file-size limit) or write the output elsewhere"
        else:
            fix = "choose an output location you can write to"
        return OutputError(f"cannot write {str(destination)!r} ({_reason(error)}); {fix}")
    return None


def _reason(error: OSError) -> str:
    """An OSError's reason without the paths, e.g. ``permission denied``."""
    if error.errno is not None:
        return os.strerror(error.errno).lower()
    return f"{type(error).__name__}: {error}"
