"""The import paths of dl4ds 0.1 still work for one release, with a DeprecationWarning naming the new path."""

import subprocess
import sys
import textwrap


def test_old_import_paths_warn_and_give_the_same_objects():
    script = textwrap.dedent(
        """
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import dl4ds.models
            from dl4ds.models import create, list_models
            from dl4ds.models.blocks import FieldDropout
            from dl4ds.models.networks import DownscalingNetwork
            from dl4ds.checkpoint import load_model, save_checkpoint
            from dl4ds.config import ExperimentConfig
            from dl4ds.evaluation.baselines import BCSD, create_baseline

        import dl4ds.baselines, dl4ds.experiment.config, dl4ds.model, dl4ds.networks
        from dl4ds.networks import architectures, blocks

        assert dl4ds.models is dl4ds.networks and create is dl4ds.networks.create and len(list_models()) == 41
        assert FieldDropout is blocks.FieldDropout and DownscalingNetwork is architectures.DownscalingNetwork
        assert load_model is dl4ds.model.load_model and save_checkpoint is dl4ds.model.save_checkpoint
        assert ExperimentConfig is dl4ds.experiment.config.ExperimentConfig
        assert BCSD is dl4ds.baselines.BCSD and create_baseline is dl4ds.baselines.create_baseline
        messages = sorted({str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)})
        assert [m.split(" has moved")[0] for m in messages] == [
            "dl4ds.checkpoint", "dl4ds.config", "dl4ds.evaluation.baselines", "dl4ds.models"
        ], messages
        assert all("will be removed in dl4ds 0.3" in m for m in messages)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
