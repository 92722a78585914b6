"""Damaged, tampered and foreign checkpoints are refused with a CheckpointError naming the fix, and nothing is written.

Each case builds a bad checkpoint from the session's trained model and loads it from Python (``load_model``) and
from the command line (``dl4ds downscale``).
"""

import pickle
import zipfile

import numpy as np
import pytest
import torch
from helpers import FIXTURES, assert_refused, assert_refused_by_cli

from dl4ds.errors import CheckpointError
from dl4ds.model import load_model, read_checkpoint, save_checkpoint
from dl4ds.model.checkpoint import checksum


def _payload(good):
    return torch.load(good, map_location="cpu", weights_only=True)


def _resealed(payload):
    """``payload`` with a checksum that matches it (a file written like this by a dl4ds run)."""
    payload["checksum"] = {"algorithm": "sha256", "digest": checksum(payload)}
    return payload


def _largest_tensor_offset(path):
    """Byte range of the largest tensor's data inside the checkpoint's zip archive."""
    with zipfile.ZipFile(path) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as handle:
        handle.seek(entry.header_offset + 26)
        name_length, extra_length = np.frombuffer(handle.read(4), dtype="<u2")
    start = entry.header_offset + 30 + int(name_length) + int(extra_length)
    return start, start + entry.file_size


def _flip_tensor_bytes(good, bad):
    raw = bytearray(good.read_bytes())
    start, stop = _largest_tensor_offset(good)
    for position in range(start + 16, min(stop, start + 16 + 4000), 4):
        raw[position] ^= 0x5A
    bad.write_bytes(bytes(raw))


def _random_bytes(good, bad):
    raw = bytearray(good.read_bytes())
    rng = np.random.default_rng(0)
    for position in rng.choice(len(raw), 5000, replace=False):
        raw[position] = int(rng.integers(256))
    bad.write_bytes(bytes(raw))


def _tampered_metadata(good, bad):
    payload = _payload(good)
    payload["metadata"]["normalizer"]["target"]["mean"] = [payload["metadata"]["normalizer"]["target"]["mean"][0] + 50]
    torch.save(payload, bad)  # the old checksum stays


def _weights(value):
    def make(good, bad):
        payload = _payload(good)
        name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.ndim == 4)
        payload["state_dict"][name].view(-1)[::7] = value
        torch.save(_resealed(payload), bad)

    return make


def _edit(change):
    def make(good, bad):
        payload = _payload(good)
        change(payload)
        torch.save(payload, bad)

    return make


def _resealed_edit(change):
    def make(good, bad):
        payload = _payload(good)
        change(payload)
        torch.save(_resealed(payload), bad)

    return make


class _Arbitrary:
    """Not allowed by torch.load(weights_only=True)."""


CASES = {
    "missing": (None, "does not exist; pass the path of a .pt file"),
    "directory": (lambda good, bad: bad.mkdir(), "is a directory; pass the path of a .pt file"),
    "text": (lambda good, bad: bad.write_text("not a checkpoint"), "corrupt, truncated or not a dl4ds checkpoint"),
    "empty": (lambda good, bad: bad.write_bytes(b""), "corrupt, truncated or not a dl4ds checkpoint"),
    "truncated": (
        lambda good, bad: bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
        "corrupt, truncated or not a dl4ds checkpoint",
    ),
    "5000_random_bytes": (_random_bytes, "corrupt"),
    "flipped_tensor_bytes": (
        _flip_tensor_bytes,
        "corrupt: its contents do not match the checksum.*Copy the file again",
    ),
    "tampered_statistics": (_tampered_metadata, "do not match the checksum.*train the model again"),
    "nan_weights": (_weights(float("nan")), "NaN or infinite.*diverged.*lower learning_rate or with grad_clip"),
    "inf_weights": (_weights(float("inf")), "NaN or infinite.*diverged.*lower learning_rate or with grad_clip"),
    "plain_state_dict": (
        lambda good, bad: torch.save(_payload(good)["state_dict"], bad),
        "not a dl4ds checkpoint .*can only load checkpoints it wrote",
    ),
    "pickled_object": (
        lambda good, bad: bad.write_bytes(pickle.dumps({"format": "dl4ds-checkpoint", "x": _Arbitrary()}, protocol=2)),
        "corrupt, truncated or not a dl4ds checkpoint",
    ),
    "newer_format": (_edit(lambda p: p.update(format_version=99)), "newer dl4ds .*upgrade dl4ds"),
    "unknown_checksum": (
        _edit(lambda p: p.update(checksum={"algorithm": "md4", "digest": "0"})),
        "unknown checksum entry.*Use a checkpoint written by dl4ds",
    ),
    "no_metadata": (_resealed_edit(lambda p: p.pop("metadata")), "damaged or inconsistent.*training again"),
    "wrong_shapes": (
        _resealed_edit(lambda p: p["metadata"]["architecture_params"].update(n_filters=4)),
        "damaged or inconsistent.*training again",
    ),
}


@pytest.fixture
def bad_checkpoint(request, trained_checkpoint, tmp_path):
    make, fix = CASES[request.param]
    bad = tmp_path / "bad.pt"
    if make is not None:
        make(trained_checkpoint, bad)
    return bad, fix


@pytest.mark.parametrize("bad_checkpoint", list(CASES), indirect=True)
def test_python_refuses_a_bad_checkpoint(bad_checkpoint, tmp_path):
    path, fix = bad_checkpoint
    assert_refused(lambda: load_model(path), CheckpointError, fix, tmp_path)


@pytest.mark.parametrize("bad_checkpoint", list(CASES), indirect=True)
def test_cli_refuses_a_bad_checkpoint(bad_checkpoint, coarse_file, tmp_path):
    path, fix = bad_checkpoint
    assert_refused_by_cli(["downscale", path, coarse_file, "-o", tmp_path / "out.nc"], CheckpointError, fix, tmp_path)


def test_checkpoints_carry_a_checksum_of_their_contents(trained_model, tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", trained_model)
    payload = read_checkpoint(path)
    assert payload["checksum"]["algorithm"] == "sha256"
    assert payload["checksum"]["digest"] == checksum(payload)
    assert len(payload["checksum"]["digest"]) == 64
    # the same contents give the same checksum; any change of a value or of the structure changes it
    assert checksum(payload) == checksum({**payload})
    state = payload["state_dict"]
    name = next(iter(state))
    changed = {**payload, "state_dict": {**state, name: state[name].clone().add_(1e-7)}}
    assert checksum(changed) != checksum(payload)
    assert checksum({**payload, "training_state": [None]}) != checksum({**payload, "training_state": (None,)})


def test_checkpoints_without_a_checksum_still_load():
    payload = read_checkpoint(FIXTURES / "legacy_v0.1.0_resnet_spc.pt")
    assert "checksum" not in payload
    assert load_model(FIXTURES / "legacy_v0.1.0_resnet_spc.pt").metadata.architecture == "resnet_spc"
