"""Supervised training, the training loop's options, checkpoints and resume."""

import numpy as np
import pytest
import torch
from helpers import SMALL_PARAMS

from dl4ds import load_model
from dl4ds.data import DownscalingDataset, Normalizer
from dl4ds.errors import CheckpointError, ConfigError
from dl4ds.model import DownscalingModel
from dl4ds.model.checkpoint import save_checkpoint
from dl4ds.training import EarlyStopping, LRSchedule, SupervisedTrainer


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
    assert {p.name for p in tmp_path.iterdir()} == {"best.pt", "last.pt", "history.csv", "learning_curves.png"}
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,val_loss") and len(lines) == 3


class _Killed(Exception):
    pass


class _KilledAfter(SupervisedTrainer):
    """A trainer whose process 'dies' at the start of epoch ``kill_at``, after the last checkpoint was written."""

    def __init__(self, kill_at: int, **kwargs):
        super().__init__(**kwargs)
        self.kill_at = kill_at

    def _epoch(self, model, network, loader, val, epoch):
        if epoch == self.kill_at:
            raise _Killed
        return super()._epoch(model, network, loader, val, epoch)


def test_resume_continues_exactly_like_an_uninterrupted_run(week_pairs, tmp_path):
    train_ds, val_ds, train, normalizer = _split(week_pairs)

    def fresh_model():
        torch.manual_seed(1)
        return DownscalingModel.build("resnet_spc", train, normalizer, params=SMALL_PARAMS)

    options = {"epochs": 3, "batch_size": 8, "seed": 1, "progress": False}
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
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_model(path)
    del payload["checksum"]  # as written before checkpoints carried one
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


def _fresh(train, normalizer, seed=1, **params):
    torch.manual_seed(seed)
    return DownscalingModel.build("resnet_spc", train, normalizer, params={**SMALL_PARAMS, **params})


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(week_pairs):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    options = {"epochs": 2, "batch_size": 8, "progress": False, "loss": {"mae": 1.0, "dssim": 0.5}}

    def weights(seed):
        model = SupervisedTrainer(seed=seed, **options).fit(_fresh(train, normalizer), train_ds, val_ds)
        return torch.cat([v.flatten().float() for v in model.state_dict().values()])

    first = weights(3)
    assert torch.equal(first, weights(3))
    assert not torch.equal(first, weights(4))


def test_learning_rate_schedules_follow_their_formulas():
    cosine = LRSchedule(name="cosine", warmup_epochs=2, min_factor=0.1)
    assert [cosine.factor_at(e, 6) for e in (0, 1, 2)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert cosine.factor_at(5, 6) == pytest.approx(0.1)  # the last epoch reaches min_factor
    assert cosine.factor_at(3, 6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi / 3)))
    step = LRSchedule(name="step", step_size=2, gamma=0.5)
    assert [step.factor_at(e, 10) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    plateau = LRSchedule(name="plateau", patience=1, factor=0.5).build(optimizer, 10)
    for loss in (1.0, 0.9, 0.95, 0.95):  # two epochs without improvement after the best exceed patience 1
        plateau.step(loss)
    assert optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(ConfigError, match="lr_schedule"):
        LRSchedule.parse({"name": "linear"}, "lr_schedule")


def test_the_trainer_applies_the_schedule_per_epoch(week_pairs):
    train_ds, _, train, normalizer = _split(week_pairs)
    trainer = SupervisedTrainer(
        epochs=3,
        batch_size=16,
        learning_rate=0.01,
        lr_schedule={"name": "step", "step_size": 1, "gamma": 0.1},
        progress=False,
    )
    trainer.fit(_fresh(train, normalizer), train_ds)
    assert [r.learning_rate for r in trainer.history.epochs] == pytest.approx([0.01, 0.001, 0.0001])


def test_early_stopping_counts_epochs_without_improvement():
    stopping = EarlyStopping(patience=2, min_delta=0.01)
    assert not stopping.should_stop([1.0, 0.9, 0.95])
    assert stopping.should_stop([1.0, 0.9, 0.95, 0.895])  # 0.895 is not better by more than min_delta
    assert not stopping.should_stop([1.0, 0.9, 0.95, 0.5])


class _ScriptedValidation(SupervisedTrainer):
    """A trainer whose validation losses follow a script, to test early stopping."""

    def __init__(self, script, **kwargs):
        super().__init__(**kwargs)
        self.script = list(script)

    def evaluate_loss(self, model, data):
        return self.script[len(self.history.epochs)]


def test_early_stopping_stops_and_restores_the_best_weights(week_pairs, tmp_path):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    trainer = _ScriptedValidation(
        [3.0, 1.0, 2.0, 2.5, 0.1, 0.1],
        epochs=6,
        batch_size=16,
        early_stopping={"patience": 2},
        checkpoint_dir=tmp_path,
        progress=False,
    )
    model = trainer.fit(_fresh(train, normalizer), train_ds, val_ds)
    assert [r.epoch for r in trainer.history.epochs] == [1, 2, 3, 4]
    best = load_model(tmp_path / "best.pt").state_dict()
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["training_state"]["epoch"] == 4  # the stopping epoch is checkpointed
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, best[key], rtol=0, atol=0)
    assert any(not torch.equal(value, last["state_dict"][key]) for key, value in best.items())


def test_gradient_clipping_bounds_the_gradient_norm(week_pairs):
    train_ds, _, train, normalizer = _split(week_pairs)
    norms = []

    class Recording(SupervisedTrainer):
        def components(self, model, train):
            parts = super().components(model, train)

            def record(optimizer, args, kwargs):
                grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
                norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

            self.optimizer.register_step_pre_hook(record)
            return parts

    Recording(epochs=1, batch_size=8, grad_clip=0.01, progress=False).fit(_fresh(train, normalizer), train_ds)
    assert norms and max(norms) <= 0.01 * (1 + 1e-4)
    norms.clear()
    Recording(epochs=1, batch_size=8, progress=False).fit(_fresh(train, normalizer), train_ds)
    assert max(norms) > 0.01


def test_weight_average_is_validated_and_kept(week_pairs, tmp_path):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    trainer = SupervisedTrainer(epochs=1, batch_size=8, ema_decay=0.9, checkpoint_dir=tmp_path, progress=False)
    model = trainer.fit(_fresh(train, normalizer), train_ds, val_ds)
    averaged = trainer.ema.module.state_dict()
    raw = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, averaged[key].cpu(), rtol=0, atol=0)
    assert any(
        not torch.equal(value, raw[key]) for key, value in model.state_dict().items() if value.is_floating_point()
    )
    assert trainer.history.epochs[0].val_loss == pytest.approx(trainer.evaluate_loss(model, val_ds), rel=1e-5)


def test_bf16_mixed_precision_trains_on_cpu_and_fp16_needs_a_gpu(week_pairs):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    trainer = SupervisedTrainer(epochs=3, batch_size=8, learning_rate=3e-3, precision="bf16", progress=False)
    model = _fresh(train, normalizer)
    before = trainer.evaluate_loss(model, val_ds)
    trainer.fit(model, train_ds, val_ds)
    assert trainer.history.epochs[-1].val_loss < 0.8 * before
    with pytest.raises(ConfigError, match="needs a GPU"):
        SupervisedTrainer(precision="fp16")


def test_checkpoints_every_n_epochs_and_curves(week_pairs, tmp_path):
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    with pytest.raises(_Killed):
        _KilledAfter(3, epochs=4, batch_size=16, checkpoint_every=2, checkpoint_dir=tmp_path, progress=False).fit(
            _fresh(train, normalizer), train_ds, val_ds
        )
    assert torch.load(tmp_path / "last.pt", weights_only=True)["training_state"]["epoch"] == 2
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 3  # the CSV follows every epoch
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_learning_curves_are_drawn_at_the_first_and_last_checkpoints_of_a_short_run(week_pairs, tmp_path, monkeypatch):
    """Redrawn at most every CURVES_INTERVAL_S seconds: a run of a few seconds draws them twice."""
    from dl4ds.training.history import TrainingHistory

    drawn = []
    monkeypatch.setattr(TrainingHistory, "plot", lambda self, path: drawn.append(len(self.epochs)))
    train_ds, val_ds, train, normalizer = _split(week_pairs)
    SupervisedTrainer(epochs=4, batch_size=16, checkpoint_dir=tmp_path, progress=False).fit(
        _fresh(train, normalizer), train_ds, val_ds
    )
    assert drawn == [1, 4]


def test_combined_loss_terms_are_recorded(week_pairs, tmp_path):
    train_ds, _, train, normalizer = _split(week_pairs)
    trainer = SupervisedTrainer(
        epochs=1,
        batch_size=16,
        loss={"mae": 1.0, "spectral": 0.1},
        checkpoint_dir=tmp_path,
        progress=False,
    )
    trainer.fit(_fresh(train, normalizer), train_ds)
    record = trainer.history.epochs[0]
    assert set(record.terms) == {"mae", "spectral"}
    assert record.train_loss > record.terms["mae"]  # the total includes 0.1 x spectral
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,val_loss,learning_rate,seconds,mae,spectral"


def test_tensorboard_logs_scalars(week_pairs, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_ds, val_ds, train, normalizer = _split(week_pairs)
    SupervisedTrainer(epochs=2, batch_size=16, tensorboard=True, checkpoint_dir=tmp_path, progress=False).fit(
        _fresh(train, normalizer), train_ds, val_ds
    )
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss/train", "loss/validation", "learning_rate"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss/validation")] == [1, 2]


def test_invalid_trainer_options_are_rejected():
    with pytest.raises(ConfigError, match="grad_clip"):
        SupervisedTrainer(grad_clip=0)
    with pytest.raises(ConfigError, match="ema_decay"):
        SupervisedTrainer(ema_decay=1.5)
    with pytest.raises(ConfigError, match="precision"):
        SupervisedTrainer(precision="fp8")
    with pytest.raises(ConfigError, match="tensorboard"):
        SupervisedTrainer(tensorboard=True)
    with pytest.raises(ConfigError, match="early_stopping"):
        SupervisedTrainer(early_stopping={"patience": 0})


def test_ensembles_need_a_stochastic_network(week_pairs):
    train_ds, _, train, normalizer = _split(week_pairs)
    with pytest.raises(ConfigError, match="noise_channels"):
        SupervisedTrainer(ensemble_size=2, loss="crps", progress=False).fit(_fresh(train, normalizer), train_ds)


@pytest.mark.slow
def test_compiled_training_takes_the_same_steps(era5_week):
    from dl4ds.data import PerfectProg

    pairs = PerfectProg(scale=4).pair(era5_week.isel(time=slice(0, 16)))
    normalizer = Normalizer.fit(pairs)
    losses = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = DownscalingModel.build("resnet_spc", pairs, normalizer, params={"n_filters": 8, "n_blocks": 1})
        trainer = SupervisedTrainer(epochs=2, batch_size=8, lr_schedule="constant", progress=False, compile=compiled)
        trainer.fit(model, DownscalingDataset(pairs, normalizer))
        losses[compiled] = [record.train_loss for record in trainer.history.epochs]
    np.testing.assert_allclose(losses[True], losses[False], rtol=0, atol=1e-5)
