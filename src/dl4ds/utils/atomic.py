"""Atomic file writing: a destination either keeps its old content or gets the complete new one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; move it into place on success.

    Write the file (or directory, e.g. a Zarr store) at the yielded path. If the
    block raises, or the process dies, the temporary is removed (or left under
    a hidden ``.name.tmp-*`` name) and ``destination`` is untouched.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{destination.name}.tmp-", dir=destination.parent)
    os.close(handle)
    temporary = Path(name)
    temporary.unlink()
    try:
        yield temporary
        os.replace(temporary, destination)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
