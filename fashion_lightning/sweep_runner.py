"""The Optuna side of ``fashion-lightning sweep``: the study, the trial loop, recovery of killed trials, the report."""

import os
import random
import time
from pathlib import Path

import optuna
import sqlalchemy.engine
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from fashion_lightning.callbacks import ResumableRun, RunSummary
from fashion_lightning.checkpoint_folders import unclaimed_checkpoint_folders
from fashion_lightning.cli import FashionCLI
from fashion_lightning.cli_setup import cli_kwargs
from fashion_lightning.datamodule import FashionMNISTDataModule
from fashion_lightning.errors import ConfigurationError, NonFiniteLossError
from fashion_lightning.lit_module import FashionClassifier
from fashion_lightning.logger_layout import runs_root
from fashion_lightning.quiet import quiet_optuna_reports
from fashion_lightning.run_claims import forget_claims, release_unused_claims
from fashion_lightning.run_lock import release_locks
from fashion_lightning.spawn_stop import stop_forwarding
from fashion_lightning.sweep import GRACE_S, HEARTBEAT_S, load_search_space, process_alive, suggest
from fashion_lightning.sweep_callbacks import EpochEndPruning, TrialReporter

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class _Parsed(Exception):  # noqa: N818 (a signal, not an error)
    def __init__(self, config) -> None:
        self.config = config


class _DryCLI(FashionCLI):
    """Parses exactly as ``fit`` does (config files, links, defaults), then stops before anything is created (and
    before LightningCLI seeds: its "Seed set to 42" would come before the sweep's own errors)."""

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        raise _Parsed(self.config["fit"])


def resolved_fit_config(fit_args: list[str]):
    # (A trial's arguments are its whole command line: quiet.py silences LightningCLI's warning about the sweep's.)
    try:
        _DryCLI(FashionClassifier, FashionMNISTDataModule, **cli_kwargs(), args=["fit", *fit_args])
    except _Parsed as parsed:
        return parsed.config
    raise AssertionError("unreachable: _DryCLI always stops")


def run_trial(trial: optuna.Trial, study: optuna.Study, options: dict, fit_args: list[str], space, host: str):
    """One ``fit`` run with this trial's values; continues the run of the trial it retries, if any."""
    flags = suggest(trial, space)
    trial.set_user_attr("host", host)
    trial.set_user_attr("pid", os.getpid())
    resume, earlier = [], []
    frozen = study.get_trials(deepcopy=False)[trial.number]  # trials are numbered 0, 1, ... in the study
    retried = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    if retried is not None:
        original = study.get_trials(deepcopy=False)[retried]
        last = Path(original.user_attrs.get("run_dir", "/nonexistent")) / "checkpoints" / "last.ckpt"
        if last.is_file():
            resume, earlier = [f"--ckpt_path={last}"], original.user_attrs.get("values", [])
            trial.set_user_attr("continues", retried)
            print(f"Trial {trial.number} continues trial {retried} from {last}", flush=True)
    callbacks = [TrialReporter(trial, options["metric"], earlier)]
    if options["pruner"] != "none":
        callbacks.append(EpochEndPruning(trial, monitor=options["metric"]))
    kwargs = cli_kwargs()
    defaults = kwargs["trainer_defaults"]["callbacks"]
    for callback in defaults:
        if isinstance(callback, (ResumableRun, RunSummary)):
            callback.resume = "run the same sweep command"  # a trial continues when the sweep runs again
    defaults[:0] = callbacks  # (before RunSummary: see TrialReporter.on_validation_end)
    name = [f"--trainer.logger.init_args.name={options['study_name']}"]
    # Each trial's best.ckpt is its best by the sweep's metric, unless the user chose (first: a config file wins).
    mode = "max" if options["direction"] == "maximize" else "min"
    user_chose = any(arg.startswith("--checkpoint.monitor") for arg in fit_args)
    best = [] if user_chose else [f"--checkpoint.monitor={options['metric']}", f"--checkpoint.mode={mode}"]
    # A trial is chosen by its validation: a test after each would show every trial the test images (for the best
    # one: its best.ckpt, with `test --ckpt_path`).
    args = ["fit", *best, *fit_args, *name, *flags, *resume, "--test_after_fit=false"]
    try:
        FashionCLI(FashionClassifier, FashionMNISTDataModule, **kwargs, args=args)
    except NonFiniteLossError as err:  # these values diverge: a result of the search, not a reason to stop it
        trial.set_user_attr("diverged", str(err).split(". ")[0])
        print(f"Trial {trial.number} pruned: {trial.user_attrs['diverged']}.", flush=True)
        raise optuna.TrialPruned(trial.user_attrs["diverged"]) from None
    except BaseException:
        release_unused_claims()
        raise
    finally:
        release_locks()
        stop_forwarding()  # (under ddp_spawn: this trial's workers are gone)
        forget_claims()
    values = callbacks[0].values
    if not values:
        raise ConfigurationError(
            f"--metric {options['metric']}: the trial's run logged no such value at its validations (did it run "
            "any?). Set --metric to a value the validation logs, such as val/acc or val/loss."
        )
    return max(values) if options["direction"] == "maximize" else min(values)


def fail_dead_local_trials(study: optuna.Study, storage: RDBStorage, host: str) -> None:
    """A RUNNING trial of this machine whose process is gone (kill -9) is failed and retried now, not after the
    heartbeat's grace period; trials of other machines are left to the heartbeat."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") == host and not process_alive(int(trial.user_attrs.get("pid", -1))):
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                storage.get_study_id_from_name(study.study_name), trial.number
            )
            if storage.set_trial_state_values(trial_id, TrialState.FAIL):
                retry(study, storage.get_trial(trial_id))


def open_storage(url: str, attempts: int = 5) -> RDBStorage:
    """The study's storage, with heartbeats. Workers that start together on an empty database race to create
    Optuna's tables (PostgreSQL reports a duplicate type): the loser waits and opens what the winner created."""
    for attempt in range(attempts):
        try:
            return RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())  # noqa: S311 (a jitter, not a secret)
        except ImportError as err:  # Optuna's, when the URL's database driver is missing
            raise storage_error(url, f"its database driver is not installed: {err.__cause__ or err}") from err
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.OperationalError) as err:  # a bad URL, no server
            raise storage_error(url, str(err.orig if hasattr(err, "orig") else err).strip().splitlines()[0]) from err
    raise AssertionError("unreachable")


def storage_error(url: str, problem: str) -> ConfigurationError:
    try:
        shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        shown = url
    return ConfigurationError(
        f"Cannot open the sweep storage '{shown}': {problem}. Check --storage (an SQLAlchemy URL such as "
        "postgresql+psycopg2://user:password@host/db, or sqlite:///path/to/sweeps.db in a folder that exists) and "
        "that its database server is running and reachable from this machine."
    )


def default_storage(config) -> str:
    """SQLite beside the runs: ``<logger save_dir>/sweeps.db``."""
    runs = runs_root(config)  # <save_dir>/<name>
    root = runs.parent if runs is not None else Path(config.trainer.get("default_root_dir") or "lightning_logs")
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'sweeps.db').absolute()}"


def check_trial_folders(config) -> None:
    """``ConfigurationError`` if the trials would share one checkpoint folder instead of each its ``version_N``."""
    shared = unclaimed_checkpoint_folders(config)
    if shared:
        raise ConfigurationError(
            f"Each trial needs a run folder of its own, but every trial's checkpoints would go to '{shared[0]}' "
            "(--trainer.logger false, --checkpoint.dirpath or --last.dirpath), where the second trial would find "
            "the first one's. Keep a TensorBoard or CSV logger (the default) and leave the checkpoints in its "
            "version_N folders."
        )


def run_sweep(options: dict, fit_args: list[str], host: str, out) -> int:
    config = resolved_fit_config(fit_args)
    check_trial_folders(config)
    space = load_search_space(options["search_space"], set(config.keys()))
    storage = open_storage(options["storage"] or default_storage(config))
    sampler_class = optuna.samplers.TPESampler if options["sampler"] == "tpe" else optuna.samplers.RandomSampler
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2) if options["pruner"] == "median" else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name=options["study_name"],
        storage=storage,
        direction=options["direction"],
        sampler=sampler_class(seed=options["seed"]),
        pruner=pruner,
        load_if_exists=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_optuna_reports()
    n_trials = options["n_trials"]
    while n_trials:
        fail_dead_local_trials(study, storage, host)
        fail_stale_trials(study)  # other machines' dead workers: heartbeat older than the grace period
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if done >= n_trials:
            break
        if done + running >= n_trials:
            print(f"{done} trials finished and {running} running in other workers: nothing left for this one.")
            break

        def objective(trial: optuna.Trial) -> float:
            # Trial numbers are allocated atomically: a worker that lost the race for the last slot stops here.
            ahead = [
                t
                for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
                if t.number < trial.number
            ]
            if len(ahead) >= n_trials:
                trial.set_user_attr("surplus", True)
                raise _Surplus
            return run_trial(trial, study, options, fit_args, space, host)

        study.optimize(objective, n_trials=1, catch=(_Surplus,), gc_after_trial=True)
    from fashion_lightning.sweep_report import report

    report(study, config, options, out)
    return 0


class _Surplus(Exception):  # noqa: N818
    """This trial would exceed n_trials (another worker took the last slot)."""
