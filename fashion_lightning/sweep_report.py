"""The end of a sweep: a table of its trials, the best trial's parameters, and ``best.yaml`` to retrain it."""

import math
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState


def _score(trial: optuna.trial.FrozenTrial, maximize: bool) -> float:
    """The trial's value; for a pruned or unfinished trial, the best epoch it reported (or the worst possible)."""
    values = trial.user_attrs.get("values") or []
    if trial.value is not None:
        return trial.value
    if not values:
        return -math.inf if maximize else math.inf
    return max(values) if maximize else min(values)


def report(study: optuna.Study, config, options: dict, out) -> Path | None:
    """Print every trial (sorted by score) and the best one; write ``best.yaml``; return its path."""
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("surplus")]
    maximize = options["direction"] == "maximize"
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    # Finished trials first, best score first.
    trials.sort(key=lambda t: (t.state in finished, _score(t, maximize) * (1 if maximize else -1)), reverse=True)
    print(f"\nStudy '{study.study_name}': {len(trials)} trials", file=out)
    print(f"| trial | state | best {options['metric']} | params | run folder |", file=out)
    print("|---|---|---|---|---|", file=out)
    for trial in trials:
        state = trial.state.name.lower()
        if "continues" in trial.user_attrs:
            state += f" (continues {trial.user_attrs['continues']})"
        if "diverged" in trial.user_attrs:
            state += " (diverged)"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
        score = _score(trial, maximize)
        shown = f"{score:.4f}" if math.isfinite(score) else "-"
        print(f"| {trial.number} | {state} | {shown} | {params} | {trial.user_attrs.get('run_dir', '-')} |", file=out)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if not completed:
        print("No completed trial yet.", file=out)
        return None
    best = study.best_trial
    print(f"\nBest: trial {best.number}, {options['metric']} {best.value:.4f}, params {best.params}", file=out)
    return write_best_config(best, out)


def write_best_config(best: optuna.trial.FrozenTrial, out) -> Path | None:
    run_dir = Path(best.user_attrs.get("run_dir", ""))
    source = run_dir / "config.yaml"
    if not source.is_file():
        print(f"(no config.yaml in {run_dir}: best.yaml not written)", file=out)
        return None
    config = yaml.safe_load(source.read_text())
    # A fresh run of the same recipe: its own version folder, no checkpoint to resume.
    config["ckpt_path"] = None
    config.pop("test_after_fit", None)  # (off in every trial: the retrain is where the one test belongs)
    logger = (config.get("trainer") or {}).get("logger")
    if isinstance(logger, dict) and isinstance(logger.get("init_args"), dict):
        logger["init_args"]["version"] = None
        logger["init_args"].pop("purge_step", None)
    target = run_dir.parent / "best.yaml"
    command = f"fashion-lightning fit --config {target} --test_after_fit true"
    header = f"# Best trial {best.number} of study '{run_dir.parent.name}': {command}\n"
    target.write_text(header + yaml.safe_dump(config, sort_keys=False))
    print(f"Retrain it, then test it once: {command}", file=out)
    return target
