"""The ``dl4ds`` command line: demo, train, tune, downscale, evaluate, evaluate-forecast, models, export."""

from __future__ import annotations

import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click
from pydantic.fields import FieldInfo

from dl4ds.baselines.options import BaselineOptions, BCSDOptions, LapseRateOptions, RegressionOptions
from dl4ds.errors import DL4DSError
from dl4ds.evaluation.forecast_options import ForecastOptions
from dl4ds.evaluation.options import EvaluateInputOptions
from dl4ds.evaluation.precipitation import PrecipitationOptions
from dl4ds.inference.options import DownscaleOptions
from dl4ds.utils.options import Options

if TYPE_CHECKING:  # the experiment imports torch: only where a command needs it
    from dl4ds.experiment import Experiment

Command = TypeVar("Command", bound=Callable[..., Any])


def option_fields(
    options: type[Options], *, exclude: Sequence[str] = (), prefix: str = ""
) -> Callable[[Command], Command]:
    """click options for the fields of ``options``: ``--field-name``, typed and documented by the field.

    No default is given to click: an option left out arrives as None (or an
    empty tuple) and is not passed on, so the field's own default applies; the
    help shows it. Bounds are checked by ``options`` when the command builds it.
    Booleans become ``--name/--no-name`` flags, ``dict[str, str]`` fields a
    repeatable ``--name KEY=VALUE`` and ``list[str]`` fields a repeatable
    ``--name VALUE``. With a ``prefix`` (e.g. ``"bcsd"``) the options are
    ``--bcsd-field-name``, arriving as ``bcsd_field_name`` (see :func:`given_options`).
    """

    def decorate(command: Command) -> Command:
        for name, field in reversed(options.model_fields.items()):
            if name not in exclude:
                command = _click_option(name, field, prefix)(command)
        return command

    return decorate


def given_options(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The options of :func:`option_fields` (with ``prefix``) that were given on the command line, unprefixed."""
    start = f"{prefix}_" if prefix else ""
    return {
        name.removeprefix(start): value
        for name, value in values.items()
        if name.startswith(start) and value is not None
    }


def _click_option(name: str, field: FieldInfo, prefix: str = "") -> Callable[[Command], Command]:
    flag = "--" + (f"{prefix}_{name}" if prefix else name).replace("_", "-")
    name = f"{prefix}_{name}" if prefix else name
    description = (field.description or "").rstrip(".")
    default = field.get_default(call_default_factory=True)
    shown = (
        ""
        if default in (None, {})
        else f"  [default: {str(default).lower() if isinstance(default, bool) else default}]"
    )
    help_text = description[:1].upper() + description[1:] + "." + shown
    kind = field.annotation
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # X | None
        kind = next(member for member in typing.get_args(kind) if member is not type(None))
    if kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
    if typing.get_origin(kind) is dict:
        return click.option(
            flag, name, multiple=True, metavar="KEY=VALUE", callback=_key_values, help=help_text + " Repeatable."
        )
    if typing.get_origin(kind) is list:
        return click.option(flag, name, multiple=True, callback=_values, help=help_text + " Repeatable.")
    if typing.get_origin(kind) is Literal:
        return click.option(
            flag, name, type=click.Choice([str(choice) for choice in typing.get_args(kind)]), help=help_text
        )
    if isinstance(kind, type) and issubclass(kind, int | float | str):
        return click.option(flag, name, type=kind, help=help_text)
    raise TypeError(f"no command-line form for the option {name!r} of type {field.annotation!r}")


def _key_values(context: click.Context, parameter: click.Parameter, items: tuple[str, ...]) -> dict[str, str] | None:
    """``("a=b", "c=d")`` as ``{"a": "b", "c": "d"}``; None when the option was not given."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=f"--{parameter.name}")
        pairs[key] = value
    return pairs or None


def _values(context: click.Context, parameter: click.Parameter, items: tuple[str, ...]) -> list[str] | None:
    """A repeated option's values as a list; None when the option was not given."""
    return list(items) or None


class _Group(click.Group):
    """Prints dl4ds errors as one clear message (exit status 2) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DL4DSError as error:
            click.secho(f"error: {error}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="dl4ds")
@click.option("-q", "--quiet", is_flag=True, help="Only print warnings and errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print dl4ds's debugging messages.")
def main(quiet: bool, verbose: bool) -> None:
    """Deep learning for downscaling gridded climate and forecast data."""
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose contradict each other; give one of them")
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    if verbose:  # dl4ds's own messages only: other libraries' debugging stays off
        logging.getLogger("dl4ds").setLevel(logging.DEBUG)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.option("-o", "--output", "output", default="demo_output", show_default=True, type=click.Path(file_okay=False))
@click.option("--epochs", type=int, help="Override the number of training epochs.")
def demo(output: str, epochs: int | None) -> None:
    """Train on bundled ERA5 data, verify against the whole baseline ladder, downscale GloSea4."""
    from dl4ds.experiment.demo import run_demo

    result = run_demo(output, epochs=epochs, progress=sys.stderr.isatty())
    _print_metrics(result.metrics or {})
    click.echo(f"outputs in {output}/: metrics.json, test_downscaled.nc, glosea4_downscaled.nc, *.png, checkpoints/")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), help="Override output_dir of the config.")
@click.option("--epochs", type=int, help="Override training.epochs of the config.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in the output directory.")
def train(config: str, output_dir: str | None, epochs: int | None, resume: bool) -> None:
    """Train a model as described by the YAML file CONFIG.

    Under torchrun (torchrun --nproc_per_node N -m dl4ds.cli train CONFIG) it
    trains data parallel across the N processes; training.batch_size is the
    global batch.
    """
    from dl4ds.experiment import Experiment
    from dl4ds.experiment.config import ExperimentConfig
    from dl4ds.training.distributed import is_main_process, shutdown

    experiment_config = ExperimentConfig.from_yaml(config)
    overrides = {"output_dir": output_dir, "training.epochs": epochs}
    experiment_config = experiment_config.with_values({k: v for k, v in overrides.items() if v is not None})
    experiment = Experiment(experiment_config)
    try:
        result = experiment.run(resume=resume, progress=sys.stderr.isatty())
        if not is_main_process():
            return
    finally:
        shutdown()
    if result.metrics:
        _print_metrics(result.metrics)
    click.echo(f"best checkpoint: {experiment.best_checkpoint}")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), help="Override output_dir of the config.")
@click.option("--trials", type=int, help="Override search.trials: trials in the study in total, over all workers.")
@click.option("--timeout", help="Override search.timeout: this worker's time budget, e.g. 30m, 2h or seconds.")
@click.option("--storage", help="Override search.storage: an RDB URL shared by the workers, e.g. sqlite:///study.db.")
@click.option("--study", help="Override search.study: the study's name in the storage (default: the config's name).")
@click.option("--no-verify", is_flag=True, help="Do not verify the best trial on the test period at the end.")
def tune(
    config: str,
    output_dir: str | None,
    trials: int | None,
    timeout: str | None,
    storage: str | None,
    study: str | None,
    no_verify: bool,
) -> None:
    """Search the space of the search: section of CONFIG for the best model and hyperparameters.

    Each trial trains the config with the trial's values (TPE sampling, trials
    lagging behind pruned on their validation loss) and is ranked on the
    validation period; the best is verified on the test period against the
    baseline ladder. Writes trials.csv, best.yaml (for dl4ds train),
    summary.json, figures/ and test/. Run it again to resume; run it in
    several processes or Slurm array tasks with one --storage to share the study.
    """
    import optuna

    from dl4ds.tuning import Tuner

    optuna.logging.disable_default_handler()  # Optuna's messages go through dl4ds's logging, at its level
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(logging.getLogger().getEffectiveLevel())
    overrides = {"trials": trials, "timeout": timeout, "storage": storage, "study": study}
    tuner = Tuner.from_yaml(config, output_dir=output_dir, progress=sys.stderr.isatty(), **overrides)
    result = tuner.run(verify_best=not no_verify)
    click.echo(", ".join(f"{count} {state.lower()}" for state, count in result.counts.items()) + " trials")
    if result.best_trial is not None:
        click.echo(f"best trial: {result.best_trial} (validation {tuner.search.objective} {result.best_value:.4f})")
    if result.test:
        _print_metrics(result.test)
    click.echo(f"results in {result.output_dir}/: trials.csv, best.yaml, summary.json, figures/, test/")


@main.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="NetCDF file or Zarr store (.zarr) to write.")
@option_fields(DownscaleOptions, exclude=("progress",))
@click.option("--progress/--no-progress", default=None, help="Progress bar  [default: when stderr is a terminal]")
def downscale(checkpoint: str, input_path: str, output: str, progress: bool | None, **options: Any) -> None:
    """Downscale the coarse data in INPUT (NetCDF or Zarr) with the model in CHECKPOINT.

    The input is read lazily and the output written block by block (one
    member and a run of time steps at a time), under a temporary name that is
    moved into place when complete.
    """
    from dl4ds.inference.downscale import Downscaler
    from dl4ds.io import check_not_input, open_data

    check_not_input(output, [input_path])
    downscaler = Downscaler(
        checkpoint, progress=sys.stderr.isatty() if progress is None else progress, **given_options(options)
    )
    result = downscaler.write(open_data(input_path), output)
    dims = ", ".join(f"{d}: {n}" for d, n in result.sizes.items())
    click.echo(f"wrote {output} ({dims}; variables {', '.join(map(str, result.data_vars))})")


@main.command()
@click.argument("prediction", type=click.Path())
@click.argument("truth", type=click.Path())
@click.option("-o", "--output", "report_dir", required=True, type=click.Path(), help="Report directory to write.")
@click.option("--variable", "variables", multiple=True, help="Variable to verify (repeatable; default: all shared).")
@click.option(
    "--baselines",
    default="",
    help="Comma-separated baselines to fit and compare, or 'all' (needs --checkpoint or --config).",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="Model checkpoint whose training data and period the baselines are fitted on.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Experiment YAML whose training data and period the baselines are fitted on.",
)
@click.option(
    "--groupby", help="Also score per season, month, lead_time, member, ... (a time component or a dimension)."
)
@click.option("--name", default="prediction", show_default=True, help="Name of the prediction in the report.")
@option_fields(EvaluateInputOptions)
@option_fields(BCSDOptions, prefix="bcsd")
@option_fields(LapseRateOptions, prefix="lapse_rate")
@option_fields(RegressionOptions, prefix="regression")
@option_fields(PrecipitationOptions, prefix="precipitation")
def evaluate(
    prediction: str,
    truth: str,
    report_dir: str,
    variables: tuple[str, ...],
    baselines: str,
    checkpoint: str | None,
    config_path: str | None,
    groupby: str | None,
    name: str,
    **options: Any,
) -> None:
    """Verify PREDICTION against TRUTH (NetCDF or Zarr) and write a report: tables, NetCDF, figures, HTML.

    Scores are area weighted: RMSE, MAE, bias, correlations, PSNR, SSIM, std
    ratio, quantile and extreme biases, spectra, and CRPS, spread-skill and
    rank histograms for ensembles; wet-day frequency and wet-day percentile
    biases for precipitation; each baseline's scores and the skill relative
    to it. The baselines' options (--bcsd-*, --lapse-rate-*, --regression-*)
    and the wet-day scores' (--precipitation-*) default to those of the
    experiment's evaluation section with --checkpoint or --config.
    """
    from dl4ds.data.units import with_units
    from dl4ds.evaluation.pipeline import Evaluation, parse_baselines, verify
    from dl4ds.evaluation.verification import Verification
    from dl4ds.io import check_not_input, open_data

    given = {name: options[name] for name in EvaluateInputOptions.model_fields if options.get(name) is not None}
    reading = EvaluateInputOptions.parse(given, "evaluate options")
    check_not_input(report_dir, [prediction, truth])
    names = parse_baselines(baselines) if baselines else []
    predicted = with_units(open_data(prediction), reading.units, role="prediction")
    observed = with_units(open_data(truth), reading.truth_units, role="truth")
    train = pairs = None
    evaluation_section = None
    if names:
        if (checkpoint is None) == (config_path is None):
            raise click.UsageError(
                "--baselines needs exactly one of --checkpoint or --config: the experiment whose "
                "training period the baselines are fitted on"
            )
        experiment = _experiment(checkpoint, config_path)
        assert experiment is not None, "exactly one of checkpoint and config_path is given"
        evaluation_section = experiment.config.evaluation
        train, pairs = experiment.baseline_pairs(predicted)
    stored_baselines = BaselineOptions() if evaluation_section is None else evaluation_section.baselines
    baseline_options = _baseline_options(stored_baselines, options)
    precipitation = (
        PrecipitationOptions() if evaluation_section is None else evaluation_section.precipitation
    ).updated("--precipitation-* options", **given_options(options, "precipitation"))
    result = verify(
        {name: predicted},
        observed,
        report_dir,
        baselines="all" if baselines.strip() == "all" else names,
        train=train,
        pairs=pairs,
        evaluation=Evaluation(Verification(groupby=groupby, precipitation=precipitation)),
        variables=variables or None,
        notes=[f"prediction: {prediction}", f"truth: {truth}"],
        baseline_options=baseline_options,
    )
    _print_metrics(result.headline)
    click.echo(f"report: {result.report}")


@main.command(name="evaluate-forecast")
@click.argument("hindcast", type=click.Path())
@click.argument("observations", type=click.Path())
@click.option("-o", "--output", "report_dir", required=True, type=click.Path(), help="Report directory to write.")
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="NAME:PATH",
    help="A reference forecast of the same layout (grid, starts, members, leads), e.g. interpolated:seas5_interp.nc. "
    "Repeatable.",
)
@click.option(
    "--baselines",
    default="",
    help="Comma-separated baselines (or 'all') applied member by member to the coarse hindcast (--coarse) as references.",
)
@click.option(
    "--coarse",
    type=click.Path(),
    help="The coarse hindcast the HINDCAST was downscaled from, for --baselines  [default: the file HINDCAST names "
    "in its dl4ds_input attribute].",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="Checkpoint of the model that downscaled HINDCAST: its training data fit the learning baselines.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Experiment YAML whose training data fit the learning baselines (instead of --checkpoint).",
)
@click.option("--name", default="downscaled", show_default=True, help="Name of HINDCAST in the report.")
@click.option("--variable", help="Variable to verify (default: the only one).")
@option_fields(ForecastOptions)
@option_fields(BCSDOptions, prefix="bcsd")
@option_fields(LapseRateOptions, prefix="lapse_rate")
@option_fields(RegressionOptions, prefix="regression")
def evaluate_forecast(
    hindcast: str,
    observations: str,
    report_dir: str,
    references: tuple[str, ...],
    baselines: str,
    coarse: str | None,
    checkpoint: str | None,
    config_path: str | None,
    name: str,
    variable: str | None,
    **options: Any,
) -> None:
    """Verify the (downscaled) HINDCAST ensemble against OBSERVATIONS per lead time, beside reference forecasts.

    HINDCAST has init (forecast_reference_time), member (realization, number)
    and lead (forecastMonth, lead_time, step) dims. Scores per lead, as maps and
    area means: ensemble-mean ACC and anomaly RMSE, CRPS and CRPSS, tercile
    RPSS, ROC areas, spread-error ratio and reliability diagrams, with BCa
    block-bootstrap intervals over the start years; and the differences of skill
    (ACC, CRPSS, RPSS) of HINDCAST minus each reference, with significance
    maps. Writes an HTML report with a section per lead, scores.nc and CSV tables.
    """
    from dl4ds.data.hindcast import Hindcast
    from dl4ds.evaluation.forecast_baselines import baseline_hindcasts
    from dl4ds.evaluation.forecast_report import write_forecast_report
    from dl4ds.evaluation.forecast_verification import ForecastVerification
    from dl4ds.evaluation.pipeline import parse_baselines
    from dl4ds.io import INPUT_ATTRIBUTE, check_not_input, open_data

    chosen = {key: options[key] for key in ForecastOptions.model_fields if options.get(key) is not None}
    verification = ForecastVerification(ForecastOptions.parse(chosen, "evaluate-forecast options"))
    paths = {name: hindcast}
    for item in references:
        label, sep, path = item.partition(":")
        if not sep or not label or not path:
            raise click.BadParameter(f"{item!r} is not NAME:PATH", param_hint="--reference")
        if label in paths:
            raise click.BadParameter(f"the name {label!r} is given twice", param_hint="--reference")
        paths[label] = path
    check_not_input(report_dir, [*paths.values(), observations, *([coarse] if coarse else [])])
    forecasts: dict[str, Any] = {label: open_data(path) for label, path in paths.items()}
    names = parse_baselines(baselines) if baselines else []
    if names:
        source = coarse or forecasts[name].attrs.get(INPUT_ATTRIBUTE)
        if not source:
            raise click.UsageError(
                f"--baselines needs the coarse hindcast: give --coarse PATH ({hindcast} names none in its "
                f"{INPUT_ATTRIBUTE} attribute)"
            )
        experiment = _experiment(checkpoint, config_path)
        train = None
        if experiment is not None:
            train = experiment.train_pairs()
        baseline_options = _baseline_options(BaselineOptions(), options)
        fine = Hindcast.of(forecasts[name], variable=variable, role=f"forecast {name!r}")
        made = baseline_hindcasts(
            names,
            open_data(str(source).split(",")[0].strip()),
            fine,
            train=train,
            options=baseline_options,
            variable=variable,
        )
        for label in made:
            if label in forecasts:
                raise click.BadParameter(
                    f"the name {label!r} is both a reference and a baseline", param_hint="--reference"
                )
        forecasts.update(made)
    scores = verification.score(forecasts, open_data(observations), variable=variable)
    notes = [f"{label}: {path}" for label, path in paths.items()] + [f"observations: {observations}"]
    if names:
        notes.append(f"baselines {', '.join(names)} applied member by member to the coarse hindcast")
    report = write_forecast_report(scores, report_dir, notes=notes)
    _print_forecast_scores(scores)
    click.echo(f"report: {report}")


@main.command(name="models")
@click.argument("name", required=False)
def list_models_command(name: str | None) -> None:
    """List the registered networks with their sizes, or show the parameters of NAME.

    Sizes are for x4 with 1 input, 1 output and 2 static channels.
    """
    from dl4ds import networks

    if name is not None:
        click.echo(f"{name}: {networks.describe_model(name)}")
        for key, default in networks.model_parameters(name).items():
            click.echo(f"  {key:20s} {default!r}")
        return
    for name in networks.list_models():
        network = networks.create(name, scale=4, in_channels=1, out_channels=1, static_channels=2)
        count = sum(p.numel() for p in network.parameters())
        click.echo(f"{name:18s} {count:>9,d} parameters   {networks.describe_model(name)}")
    click.echo("\n`dl4ds models NAME` lists the parameters of one model; set them under model.params in the config.")


def _print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    if not metrics:
        return
    names = list(next(iter(metrics.values())))
    click.echo(f"{'model':24s}" + "".join(f"{n:>13s}" for n in names))
    for method, values in metrics.items():
        click.echo(f"{method:24s}" + "".join(f"{values[n]:13.4f}" for n in names))


def _experiment(checkpoint: str | None, config_path: str | None) -> Experiment | None:
    """The experiment of ``--checkpoint`` or ``--config`` (whose training data the baselines learn from), or None."""
    from dl4ds.experiment import Experiment

    if checkpoint is not None and config_path is not None:
        raise click.UsageError("give --checkpoint or --config, not both: the experiment the baselines learn from")
    if checkpoint is not None:
        return Experiment.of_checkpoint(checkpoint)
    return None if config_path is None else Experiment.from_yaml(config_path)


def _baseline_options(stored: BaselineOptions, options: dict[str, Any]) -> BaselineOptions:
    """``stored`` updated with the --bcsd-*, --lapse-rate-* and --regression-* options given on the command line."""
    return BaselineOptions(
        **{
            section: getattr(stored, section).updated(
                f"--{section.replace('_', '-')}-* options", **given_options(options, section)
            )
            for section in BaselineOptions.model_fields
        }
    )


def _print_forecast_scores(scores: Any) -> None:
    """Per-lead ACC and CRPSS with intervals, then the differences from each reference."""
    table = scores.table(("acc", "crpss"))
    click.echo(f"{'model':20s}{'lead':>8s}{'ACC [interval]':>28s}{'CRPSS [interval]':>28s}")
    for row in table.itertuples():
        acc = f"{row.acc:.3f} [{row.acc_low:.3f}, {row.acc_high:.3f}]"
        crpss = f"{row.crpss:.3f} [{row.crpss_low:.3f}, {row.crpss_high:.3f}]"
        click.echo(f"{row.model:20s}{row.lead:>8s}{acc:>28s}{crpss:>28s}")
    if scores.references:
        differences = scores.difference_table()
        click.echo(f"{'minus reference':20s}{'lead':>8s}{'dACC [interval] p':>34s}{'dCRPSS [interval] p':>34s}")
        for row in differences.itertuples():
            acc = f"{row.delta_acc:+.3f} [{row.delta_acc_low:+.3f}, {row.delta_acc_high:+.3f}] {row.delta_acc_p_value:.2f}"
            crpss = (
                f"{row.delta_crpss:+.3f} [{row.delta_crpss_low:+.3f}, {row.delta_crpss_high:+.3f}] "
                f"{row.delta_crpss_p_value:.2f}"
            )
            click.echo(f"{row.reference:20s}{row.lead:>8s}{acc:>34s}{crpss:>34s}")


@main.command(name="export")
@click.argument("checkpoint", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="ONNX file to write.")
@click.option("--opset", type=int, help="ONNX opset version, 11 to 20 (default: 17).")
@click.option("--no-check", is_flag=True, help="Write the file without comparing ONNX Runtime with torch.")
def export_command(checkpoint: str, output: str, opset: int | None, no_check: bool) -> None:
    """Export the network in CHECKPOINT to ONNX, checked against ONNX Runtime.

    The graph maps normalised coarse inputs to normalised fine fields; the
    model's metadata (variables, grids, normalisation statistics) is stored
    as JSON under 'dl4ds_metadata' in the file's metadata_props. Needs
    pip install "dl4ds[onnx]".
    """
    from dl4ds.inference.export import export_onnx
    from dl4ds.model.checkpoint import load_model

    model = load_model(checkpoint)
    result = export_onnx(model, output, opset=opset, check=not no_check)
    click.echo(
        f"wrote {result.path} (inputs: {', '.join(result.input_names)}; output: {result.output_name}; opset {result.opset})"
    )
    if result.max_abs_diff is None or result.max_abs_diff_physical is None:
        click.echo("not compared with ONNX Runtime (--no-check)")
        return
    physical = ", ".join(
        f"{name} {value:.3g} {model.metadata.attrs.get(name, {}).get('units', '')}".rstrip()
        for name, value in result.max_abs_diff_physical.items()
    )
    click.echo(
        f"max |ONNX Runtime - torch| on {len(result.checked_shapes)} input shapes: "
        f"{result.max_abs_diff:.3g} normalised ({physical})"
    )


if __name__ == "__main__":
    main()
