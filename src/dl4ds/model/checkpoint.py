"""Checkpoint files: weights, metadata and (optionally) the training state.

A checkpoint is a ``torch.save`` file holding only tensors and plain Python
data, read back with ``torch.load(weights_only=True)``, so loading never
unpickles arbitrary objects. Files are written atomically.
"""

from __future__ import annotations

import os
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
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint contents, after checking that the file is a dl4ds checkpoint."""
    path = Path(path)
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
    return payload


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> DownscalingModel:
    """Rebuild the model stored in a checkpoint's contents."""
    try:
        metadata = ModelMetadata.from_dict(payload["metadata"])
        model = DownscalingModel.from_metadata(metadata)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(
            f"{source} is damaged or inconsistent: {error}. Re-create it by training again."
        ) from None
    model.eval()
    return model


def load_model(path: str | os.PathLike[str]) -> DownscalingModel:
    """Load a trained :class:`DownscalingModel` from a checkpoint file, in eval mode on the CPU."""
    return model_from_payload(read_checkpoint(path), source=repr(str(path)))
