"""Old import paths kept for one release: a module that stands for the module at its new place."""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

REMOVED_IN = "0.3"


def alias_module(old: str, new: str, submodules: Mapping[str, str] | None = None) -> None:
    """Make the module being imported as ``old`` the module ``new``, with a DeprecationWarning.

    Call it from the old module's body. ``submodules`` maps old submodule
    names to new ones (``{"networks": "architectures"}``); every other
    submodule of a package keeps its name. The submodules are registered
    under their old names too, so ``import old.sub`` gives the very same
    module object as ``import new.sub`` (not a second copy with other classes).
    """
    warnings.warn(
        f"{old} has moved to {new}; the old name is deprecated and will be removed in dl4ds {REMOVED_IN}. "
        f"Import {new} instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    names = dict(submodules or {})
    for path in getattr(module, "__path__", []):
        for entry in sorted(Path(path).glob("*.py")):
            if entry.stem != "__init__":
                names.setdefault(entry.stem, entry.stem)
    for old_name, new_name in names.items():
        sys.modules[f"{old}.{old_name}"] = importlib.import_module(f"{new}.{new_name}")
