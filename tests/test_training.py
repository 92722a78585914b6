"""Losses, supervised training, checkpoints and resume."""

import numpy as np
import pytest
import torch

from conftest import SMALL_PARAMS
from dl4ds import load_model
from dl4ds.checkpoint import save_checkpoint
from dl4ds.data import DownscalingDataset, Normalizer
from dl4ds.errors import CheckpointError, ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.training import SupervisedTrainer, get_loss, masked_mae, masked_mse


def test_masked_losses_against_hand_computation():
    prediction = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[2.0, 2.0], [0.0, 100.0]]]])
    mask = torch.tensor([[[[True, True], [True, False]]]])
    assert masked_mae(prediction, target, mask).item() == pytest.approx((1 + 0 + 3) / 3)
    assert masked_mse(prediction, target, mask).item() == pytest.approx((1 + 0 + 9) / 3)
    with pytest.raises(ConfigError, match="unknown loss 'ssim'"):
        get_loss("ssim")


def _split(week_pairs):
    train = week_pairs.select_time("2019-03-01", "2019-03-05")
    val = week_pairs.select_time("2019-03-06", "2019-03-07")
    normalizer = Normalizer.fit(train)
    return DownscalingDataset(train, normalizer), DownscalingDataset(val, normalizer), train, normalizer


def test_training_lowers_the_validation_loss_on_real_data(week_pairs):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    torch.manual_seed(0)
    model = DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)
    trainer = SupervisedTrainer(epochs=4, batch_size=8, learning_rate=3e-3, progress=False)
    before = trainer.evaluate_loss(model, val_ds)
    trainer.fit(model, train_ds, val_ds)
    after = trainer.evaluate_loss(model, val_ds)
    assert after < 0.8 * before
    losses = [record.train_loss for record in trainer.history.epochs]
    assert losses[-1] < losses[0]


def test_checkpoint_round_trip_gives_identical_predictions(trained_model, week_pairs, tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", trained_model)
    loaded = load_model(path)
    dataset = DownscalingDataset(week_pairs, trained_model.metadata.normalizer)
    batch = torch.stack([dataset[i]["x"] for i in range(4)])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), trained_model.eval()(batch), rtol=0, atol=0)
    assert loaded.metadata.to_dict() == trained_model.metadata.to_dict()
    assert loaded.metadata.fine_grid.equals(week_pairs.fine_grid)
    assert loaded.metadata.attrs["t2m"]["units"] == "K"


def test_checkpoint_loads_without_unpickling_objects(trained_model, tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", trained_model)
    payload = torch.load(path, weights_only=True)  # raises if anything but tensors and plain data is inside
    assert payload["format"] == "dl4ds-checkpoint"
    assert payload["metadata"]["scale"] == 4


def test_best_and_last_checkpoints_and_history_are_written(week_pairs, tmp_path):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    model = DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)
    SupervisedTrainer(epochs=2, batch_size=8, checkpoint_dir=tmp_path, progress=False).fit(model, train_ds, val_ds)
    assert {p.name for p in tmp_path.iterdir()} == {"best.pt", "last.pt", "history.csv"}
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,val_loss") and len(lines) == 3


class _Killed(Exception):
    pass


class _KilledAfter(SupervisedTrainer):
    """A trainer whose process 'dies' at the start of epoch ``kill_at``, after the last checkpoint was written."""

    def __init__(self, kill_at: int, **kwargs):
        super().__init__(**kwargs)
        self.kill_at = kill_at

    def _train_epoch(self, model, loader, optimizer, epoch):
        if epoch == self.kill_at:
            raise _Killed
        return super()._train_epoch(model, loader, optimizer, epoch)


def test_resume_continues_exactly_like_an_uninterrupted_run(week_pairs, tmp_path):
    train_ds, val_ds, train, normalizer = _split(week_pairs)

    def fresh_model():
        torch.manual_seed(1)
        return DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)

    options = dict(epochs=3, batch_size=8, seed=1, progress=False)
    SupervisedTrainer(**options, checkpoint_dir=tmp_path / "straight").fit(fresh_model(), train_ds, val_ds)
    with pytest.raises(_Killed):
        _KilledAfter(3, **options, checkpoint_dir=tmp_path / "killed").fit(fresh_model(), train_ds, val_ds)
    trainer = SupervisedTrainer(**options, checkpoint_dir=tmp_path / "killed")
    trainer.fit(fresh_model(), train_ds, val_ds, resume=True)
    assert [r.epoch for r in trainer.history.epochs] == [1, 2, 3]
    reference = load_model(tmp_path / "straight" / "last.pt").state_dict()
    resumed = load_model(tmp_path / "killed" / "last.pt").state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def test_resume_without_checkpoint_is_an_error(week_pairs, tmp_path):
    train_ds, _, train, normalizer = _split(week_pairs)
    model = DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)
    with pytest.raises(CheckpointError, match="does not exist"):
        SupervisedTrainer(epochs=1, checkpoint_dir=tmp_path, progress=False).fit(model, train_ds, resume=True)


def test_resume_with_another_model_is_an_error(week_pairs, tmp_path):
    train_ds, _, train, normalizer = _split(week_pairs)
    small = DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)
    SupervisedTrainer(epochs=1, checkpoint_dir=tmp_path, progress=False).fit(small, train_ds)
    wider = DownscalingModel.build("resnet_spc", train, normalizer, params={**SMALL_PARAMS, "n_filters": 24})
    with pytest.raises(CheckpointError, match="holds a different model"):
        SupervisedTrainer(epochs=2, checkpoint_dir=tmp_path, progress=False).fit(wider, train_ds, resume=True)


def test_unreadable_and_foreign_checkpoints_are_rejected(trained_model, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    good = save_checkpoint(tmp_path / "good.pt", trained_model)
    corrupt.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt, truncated or not a dl4ds checkpoint"):
        load_model(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not a dl4ds checkpoint"):
        load_model(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(text)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_checkpoint_with_inconsistent_weights_is_rejected(trained_model, tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", trained_model)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].popitem()
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="damaged or inconsistent"):
        load_model(path)


def test_checkpoint_write_is_atomic(trained_model, tmp_path, monkeypatch):
    target = tmp_path / "model.pt"

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(target, trained_model)
    assert list(tmp_path.iterdir()) == []
