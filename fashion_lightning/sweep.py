"""``fashion-lightning sweep``: hyperparameter search with Optuna; every trial is a normal, resumable ``fit`` run.

    fashion-lightning sweep --config configs/mlp.yaml --search_space configs/sweeps/mlp.yaml --n_trials 20

Every ``fit`` option and config file is accepted; the sweep's own options are listed in ``SWEEP_OPTIONS``. Trials
are stored in an Optuna storage: SQLite in the runs folder by default, or any SQLAlchemy URL (PostgreSQL) shared by
several workers on one machine or many. Each trial runs in its own ``version_N`` under the study's name. A worker
killed with ``kill -9`` leaves its trial RUNNING: the next worker on the same machine sees that its process is gone,
on another machine its heartbeat goes stale, and either way the trial is retried from its own ``last.ckpt`` (same
run folder, exact resume). Workers stop once exactly ``n_trials`` trials have finished (completed or pruned).
"""

import math
import os
import socket
import sys
from pathlib import Path

import yaml

from fashion_lightning.errors import ConfigurationError
from fashion_lightning.parse_errors import WORDS

HEARTBEAT_S, GRACE_S = 20, 60  # a trial whose heartbeat is a minute old is taken for dead
SWEEP_OPTIONS = {  # name: (default, type, help)
    "search_space": (None, str, "YAML file: option name -> distribution (see configs/sweeps/mlp.yaml); required"),
    "n_trials": (20, int, "finished (completed or pruned) trials the study should reach; 0 only reports"),
    "study_name": ("sweep", str, "the study, shared by every worker that names it; also the runs' folder name"),
    "storage": (None, str, "SQLAlchemy URL; default sqlite:///<runs folder>/sweeps.db"),
    "direction": ("maximize", str, "maximize or minimize the metric"),
    "metric": ("val/acc", str, "the logged metric a trial is scored by (its best epoch)"),
    "sampler": ("tpe", str, "tpe or random"),
    "pruner": ("median", str, "median (stop trials below the median of earlier ones at the same epoch) or none"),
    "seed": (42, int, "seed of the sampler"),
}
DISTRIBUTION_TYPES = ("float", "int", "categorical")


def split_args(argv: list[str]) -> tuple[dict, list[str]]:
    """The sweep's own options (with defaults) and everything else, which goes to ``fit`` unchanged."""
    options = {name: default for name, (default, _, _) in SWEEP_OPTIONS.items()}
    rest, index = [], 0
    while index < len(argv):
        arg = argv[index]
        name, has_value, value = arg[2:].partition("=") if arg.startswith("--") else (arg, False, None)
        if arg.startswith("--") and name in SWEEP_OPTIONS:
            if not has_value:
                if index + 1 >= len(argv):
                    raise ConfigurationError(f"--{name} needs a value.")
                index, value = index + 1, argv[index + 1]
            try:
                options[name] = SWEEP_OPTIONS[name][1](value)
            except ValueError:
                raise ConfigurationError(
                    f"--{name}: got {value}, expected {WORDS[SWEEP_OPTIONS[name][1].__name__]}."
                ) from None
        else:
            rest.append(arg)
        index += 1
    return options, rest


def usage() -> str:
    lines = [__doc__.split("\n\n")[0], "", "Sweep options (every `fashion-lightning fit` option is accepted too):"]
    lines += [f"  --{name} ({default!r}): {text}" for name, (default, _, text) in SWEEP_OPTIONS.items()]
    return "\n".join(lines)


def load_search_space(path: str | None, known: set[str]) -> dict[str, dict]:
    """Read and check the search space; ``ConfigurationError`` naming the entry, before any trial runs."""
    if not path:
        raise ConfigurationError("--search_space FILE is required (a YAML file; see configs/sweeps/mlp.yaml).")
    try:
        space = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ConfigurationError(
            f"Cannot read the search space '{path}' ({err.strerror or err}). Pass --search_space with the path of a "
            "YAML file of the values to search (an example: configs/sweeps/mlp.yaml)."
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigurationError(f"The search space '{path}' is not valid YAML: {problem}{where}.") from None
    if not isinstance(space, dict) or not space:
        raise ConfigurationError(f"'{path}' must map option names (e.g. model.lr) to distributions.")
    earlier: dict[str, dict] = {}
    for name, spec in space.items():
        check_entry(str(name), spec, known, path)
        check_condition(str(name), spec.get("when"), earlier, path)
        earlier[name] = spec
    return space


def check_entry(name: str, spec, known: set[str], path) -> None:
    where = f"Search space '{path}', entry '{name}'"
    if name not in known:
        raise ConfigurationError(f"{where}: not a fit option (like model.lr or data.batch_size).")
    if not isinstance(spec, dict) or spec.get("type") not in DISTRIBUTION_TYPES:
        raise ConfigurationError(f"{where}: needs 'type', one of {', '.join(DISTRIBUTION_TYPES)}.")
    if spec["type"] == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            raise ConfigurationError(f"{where}: a categorical entry needs a non-empty list 'choices'.")
        return
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if low is None or high is None or not all(isinstance(v, int | float) and math.isfinite(v) for v in numbers):
        raise ConfigurationError(f"{where}: needs numbers 'low' and 'high' (and optionally 'step', 'log').")
    if low > high:
        raise ConfigurationError(f"{where}: low ({low}) is greater than high ({high}).")
    if spec["type"] == "int" and not all(float(v).is_integer() for v in numbers):
        raise ConfigurationError(f"{where}: an int entry needs whole numbers.")
    if spec.get("log") and (low <= 0 or step is not None):
        raise ConfigurationError(f"{where}: log scale needs low > 0 and no step.")
    if step is not None and step <= 0:
        raise ConfigurationError(f"{where}: step must be positive.")


def check_condition(name: str, when, earlier: dict[str, dict], path) -> None:
    """Check an entry's ``when`` (earlier entry -> the value, or a list of the values, that it is sampled with)."""
    if when is None:
        return
    where = f"Search space '{path}', entry '{name}'"
    if not isinstance(when, dict) or not when:
        raise ConfigurationError(f"{where}: 'when' maps earlier entries to values, e.g. {{model.optimizer: sgd}}.")
    for other, wanted in when.items():
        if other not in earlier:
            raise ConfigurationError(f"{where}: 'when' names '{other}', which is not an entry above this one.")
        if "choices" not in earlier[other]:
            continue  # a numeric entry: any value may come
        choices = _choices(earlier[other])
        missing = [v for v in _wanted(wanted, earlier[other]) if v not in choices]
        if missing:
            raise ConfigurationError(
                f"{where}: 'when' waits for {other} = {missing[0]}, which is not one of its choices "
                f"({', '.join(map(str, choices))}): the entry would never be sampled."
            )


def suggest(trial, space: dict[str, dict]) -> list[str]:
    """This trial's values, as ``--option=value`` flags for ``fit``; an entry whose ``when`` does not hold is left
    out (the fit keeps its configured value, and Optuna its search space conditional)."""
    flags, chosen = [], {}
    for name, spec in space.items():
        when = spec.get("when") or {}
        if not all(chosen.get(other) in _wanted(v, space[other]) for other, v in when.items()):
            continue
        if spec["type"] == "float":
            value = trial.suggest_float(
                name, spec["low"], spec["high"], log=bool(spec.get("log")), step=spec.get("step")
            )
        elif spec["type"] == "int":
            step = int(spec.get("step") or 1)
            value = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")), step=step)
        else:  # Optuna stores primitives: a list choice (e.g. hidden_dims) travels as its YAML text
            value = trial.suggest_categorical(name, _choices(spec))
        chosen[name] = value
        flags.append(f"--{name}={'null' if value is None else value}")
    return flags


def _primitive(choice):
    if choice is None or isinstance(choice, bool | int | float | str):
        return choice
    return yaml.safe_dump(choice, default_flow_style=True).strip()  # [256, 256] -> "[256, 256]"


def _choices(spec: dict) -> list:
    """A categorical entry's choices as Optuna stores them (``_primitive``); none for a numeric entry."""
    return [_primitive(choice) for choice in spec.get("choices") or []]


def _wanted(value, spec: dict) -> list:
    """The values a ``when`` waits for an entry of ``spec`` to take, as Optuna stores them: a value, or a list of
    values (a list that is itself one of the entry's choices, like ``[64]`` of ``hidden_dims``, is one value)."""
    values = [value] if not isinstance(value, list) or _primitive(value) in _choices(spec) else value
    return [_primitive(v) for v in values]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str]) -> int:
    """Run (or continue) a sweep; returns the exit code."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage())
        return 0
    try:  # (find_spec fails on optuna_integration once imported: a lazy module without __spec__)
        from fashion_lightning.sweep_runner import run_sweep  # imports Optuna and optuna-integration
    except ImportError as err:
        raise ConfigurationError(f"Sweeps need Optuna ({err}): pip install 'fashion-lightning[sweep]'.") from None

    options, fit_args = split_args(argv)
    if options["direction"] not in ("maximize", "minimize"):
        raise ConfigurationError(f"--direction must be maximize or minimize, got {options['direction']!r}.")
    if options["sampler"] not in ("tpe", "random") or options["pruner"] not in ("median", "none"):
        raise ConfigurationError("--sampler takes tpe or random; --pruner takes median or none.")
    if options["n_trials"] < 0:
        raise ConfigurationError(f"--n_trials must be 0 or more, got {options['n_trials']}.")
    return run_sweep(options, fit_args, host=socket.gethostname(), out=sys.stdout)
