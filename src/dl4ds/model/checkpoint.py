"""Checkpoint files: weights, metadata and (optionally) the training state.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python
data, read back with ``torch.load(weights_only=True)``, so loading never
unpickles arbitrary objects. Files are written atomically.

Every checkpoint since 0.2.0 carries a SHA-256 checksum of its contents
(every tensor's dtype, shape and bytes, and every other value), verified when
it is read, so a file damaged on disk or in transfer is refused instead of
giving wrong output; weights that are NaN or infinite are refused too.
Checkpoints written before (without a checksum) still load.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dl4ds._version import __version__
from dl4ds.errors import CheckpointError
from dl4ds.model.downscaling_model import DownscalingModel
from dl4ds.model.metadata import ModelMetadata
from dl4ds.utils.atomic import atomic_path

FORMAT = "dl4ds-checkpoint"
FORMAT_VERSION = 1
CHECKSUM_ALGORITHM = "sha256"


def save_checkpoint(
    path: str | os.PathLike[str], model: DownscalingModel, training_state: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` (and, for resuming, ``training_state``) to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dl4ds_version": __version__,
        "metadata": model.metadata.to_dict(),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "training_state": training_state,
    }
    payload["checksum"] = {"algorithm": CHECKSUM_ALGORITHM, "digest": checksum(payload)}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint contents, after checking that the file is a dl4ds checkpoint."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a directory; pass the path of a .pt file written by dl4ds, e.g. "
            f"{str(path / 'checkpoints' / 'best.pt')!r}"
        )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist; pass the path of a .pt file written by dl4ds")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many unrelated types for files it cannot parse
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r}: the file is corrupt, truncated or not a dl4ds checkpoint "
            f"({type(error).__name__}). Use a checkpoint written by dl4ds (e.g. best.pt of a training run)."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is a PyTorch file but not a dl4ds checkpoint (no '{FORMAT}' marker); "
            "dl4ds can only load checkpoints it wrote"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} was written by a newer dl4ds ({payload.get('dl4ds_version')}); upgrade dl4ds to read it"
        )
    _verify_checksum(payload, path)
    _check_finite(payload, path)
    return payload


def checksum(payload: Mapping[str, Any]) -> str:
    """The hexadecimal SHA-256 digest of a checkpoint's contents, its ``checksum`` entry left out.

    Covers the structure (keys and their order-independent nesting), every
    tensor's dtype, shape and bytes, and the ``repr`` of every other value.
    """
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in payload.items() if key != "checksum"})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest``, tagged by type so that different structures never give the same bytes."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: repr(item[0]))
        digest.update(f"D{len(items)}|".encode())
        for key, item in items:
            digest.update(f"K{key!r}|".encode())
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__[0]}{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"V{type(value).__name__}:{value!r}|".encode())


def _verify_checksum(payload: Mapping[str, Any], path: Path) -> None:
    stored = payload.get("checksum")
    if stored is None:  # written before 0.2.0
        return
    if not isinstance(stored, Mapping) or stored.get("algorithm") != CHECKSUM_ALGORITHM:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has an unknown checksum entry {stored!r}; it was not written by this dl4ds. "
            "Use a checkpoint written by dl4ds, or upgrade dl4ds"
        )
    if stored.get("digest") != checksum(payload):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt: its contents do not match the checksum written with it (damaged on "
            "disk or in transfer). Copy the file again from where it was trained, or train the model again"
        )


def _check_finite(payload: Mapping[str, Any], path: Path) -> None:
    """Refuse weights that are NaN or infinite, naming the first tensors that hold them."""
    state = payload.get("state_dict")
    if not isinstance(state, Mapping):
        return  # model_from_payload names the damage
    bad = [
        name
        for name, tensor in state.items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds weights that are NaN or infinite ({shown}): the training that wrote it "
            "diverged, and the model would output NaN. Train again with a lower learning_rate or with grad_clip "
            "(e.g. 1.0), and use a checkpoint of an epoch before the divergence"
        )


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> DownscalingModel:
    """Rebuild the model stored in a checkpoint's contents."""
    try:
        metadata = ModelMetadata.from_dict(payload["metadata"])
        model = DownscalingModel.from_metadata(metadata)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = " ".join(lines[:2]) + (f" (and {len(lines) - 2} more problems)" if len(lines) > 2 else "")
        raise CheckpointError(
            f"{source} is damaged or inconsistent ({type(error).__name__}: {detail}). Re-create it by training again."
        ) from None
    model.eval()
    return model


def load_model(path: str | os.PathLike[str]) -> DownscalingModel:
    """Load a trained :class:`DownscalingModel` from a checkpoint file, in eval mode on the CPU."""
    return model_from_payload(read_checkpoint(path), source=repr(str(path)))
