"""Data-parallel training: torchrun with 2 Gloo processes equals one process; checkpoints move between the two."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dl4ds.data import DownscalingDataset
from dl4ds.errors import ConfigError
from dl4ds.model.checkpoint import load_model, read_checkpoint
from dl4ds.training.distributed import Distributed

pytestmark = pytest.mark.slow  # each test runs training in subprocesses

WORKER = Path(__file__).with_name("distributed_worker.py")
sys.path.insert(0, str(WORKER.parent))
from distributed_worker import train  # noqa: E402


def torchrun(output: Path, *arguments: str, processes: int = 2) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(WORKER),
        str(output),
        *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key].float(), second[key].float(), rtol=0, atol=atol, msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two epochs with 2 processes (torchrun, Gloo) and with one (in this process)."""
    root = tmp_path_factory.mktemp("ddp")
    torchrun(root / "two", "--epochs", "2")
    train(root / "one", epochs=2)
    return root


def test_two_processes_give_the_weights_of_one(runs):
    assert_same_weights(runs / "two" / "last.pt", runs / "one" / "last.pt")
    two, one = (read_checkpoint(runs / name / "last.pt")["training_state"]["history"] for name in ("two", "one"))
    # the losses every process contributes are gathered into the global batch's
    np.testing.assert_allclose([r["train_loss"] for r in two], [r["train_loss"] for r in one], rtol=0, atol=1e-5)
    np.testing.assert_allclose([r["val_loss"] for r in two], [r["val_loss"] for r in one], rtol=0, atol=1e-5)


def test_a_distributed_checkpoint_resumes_in_one_process(runs, tmp_path):
    shutil.copytree(runs / "two", tmp_path / "resumed")
    trainer = train(tmp_path / "resumed", epochs=3, resume=True)
    assert [record.epoch for record in trainer.history.epochs] == [1, 2, 3]
    train(tmp_path / "straight", epochs=3)
    assert_same_weights(tmp_path / "resumed" / "last.pt", tmp_path / "straight" / "last.pt")
    load_model(tmp_path / "resumed" / "best.pt")  # an ordinary model checkpoint


def test_cgan_trains_with_two_processes_and_resumes_in_one(tmp_path):
    torchrun(tmp_path / "gan", "--epochs", "1", "--trainer", "cgan")
    state = read_checkpoint(tmp_path / "gan" / "last.pt")["training_state"]
    assert "discriminator" in state["components"]
    trainer = train(tmp_path / "gan", epochs=2, trainer_name="cgan", resume=True)
    assert [record.epoch for record in trainer.history.epochs] == [1, 2]
    assert all(np.isfinite(record.train_loss) for record in trainer.history.epochs)


def test_diffusion_trains_both_stages_with_two_processes_and_resumes_in_one(tmp_path):
    """Stage 1 (a supervised run) takes the steps of one process; the residual scale is the same in every process
    (summed over them); stage 2's checkpoint, EMA included, resumes in one process."""
    torchrun(tmp_path / "two", "--epochs", "1", "--trainer", "diffusion")
    train(tmp_path / "one", epochs=1, trainer_name="diffusion")
    assert_same_weights(tmp_path / "two" / "stage1" / "last.pt", tmp_path / "one" / "stage1" / "last.pt")
    two, one = weights(tmp_path / "two" / "last.pt"), weights(tmp_path / "one" / "last.pt")
    torch.testing.assert_close(two["network.residual_scale"], one["network.residual_scale"], rtol=0, atol=1e-6)
    state = read_checkpoint(tmp_path / "two" / "last.pt")["training_state"]
    assert "ema" in state["components"]
    trainer = train(tmp_path / "two", epochs=2, trainer_name="diffusion", resume=True)
    assert [record.epoch for record in trainer.history.epochs] == [1, 2]
    assert all(np.isfinite(record.val_loss) for record in trainer.history.epochs)


def test_global_batch_must_split_across_processes():
    with pytest.raises(ConfigError, match="batch_size=10 .* across 4 processes; use a multiple of 4"):
        Distributed(rank=0, world_size=4).local_batch_size(10)
    assert Distributed(rank=1, world_size=4).local_batch_size(16) == 4


def test_patches_depend_on_seed_epoch_and_index_only(week_pairs):
    from dl4ds.data import Normalizer

    data = DownscalingDataset(week_pairs, Normalizer.fit(week_pairs), patch_size=(16, 16), seed=3)
    first = [data[i]["offset"].tolist() for i in range(10)]
    torch.manual_seed(123)  # the global generator plays no part
    assert [data[i]["offset"].tolist() for i in range(10)] == first
    data.set_epoch(1)
    assert [data[i]["offset"].tolist() for i in range(10)] != first
