"""What the values of a ``FashionClassifier``'s hyperparameters must be, checked before anything is built, and
which values the others leave without effect."""

import inspect

from lightning.pytorch.utilities import rank_zero_warn

from fashion_lightning.errors import ConfigurationError

# name: (test of a value that is set, what it must be). A bad value is one paragraph here; torch would raise its own
# error later, from deep inside fit.
VALID_VALUES = {
    "lr": (lambda v: v > 0, "a positive number"),
    "momentum": (lambda v: v >= 0, "at least 0"),
    "weight_decay": (lambda v: v >= 0, "at least 0"),
    "dropout": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "label_smoothing": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "lr_step_size": (lambda v: v >= 1, "at least 1"),
    "lr_gamma": (lambda v: v > 0, "a positive number"),
    "gradient_clip_val": (lambda v: v > 0, "a positive number (or null: no clipping)"),
    "accumulate_grad_batches": (lambda v: v >= 1, "at least 1"),
    "hidden_dims": (lambda v: all(width >= 1 for width in v), "a list of widths of at least 1"),
}

# name: (what it takes effect with, test of the hyperparameters). A value set away from its default while the test
# fails would go unused without a word: a fit warns instead (``warn_unused``).
TAKES_EFFECT_WITH = {
    "hidden_dims": ("--model.net mlp (the CNN has its own layers)", lambda hp: hp["net"] == "mlp"),
    "momentum": ("--model.optimizer sgd (Adam's momentum is its betas)", lambda hp: hp["optimizer"] == "sgd"),
    "nesterov": ("--model.optimizer sgd", lambda hp: hp["optimizer"] == "sgd"),
    "lr_step_size": ("--model.lr_scheduler step", lambda hp: hp["lr_scheduler"] == "step"),
    "lr_gamma": ("--model.lr_scheduler step", lambda hp: hp["lr_scheduler"] == "step"),
    "gradient_clip_algorithm": ("--model.gradient_clip_val", lambda hp: hp["gradient_clip_val"] is not None),
}


def warn_unused(values, owner: type, takes_effect_with: dict, prefix: str) -> None:
    """Warn once about every option of ``values`` (``owner``'s saved hyperparameters) set away from its default in
    ``owner.__init__`` that has no effect with the other values (``takes_effect_with``: name -> (what it needs,
    test))."""
    defaults = inspect.signature(owner.__init__).parameters
    unused = [
        f"--{prefix}.{name} {_shown(values[name])} has no effect without {needs}"
        for name, (needs, takes_effect) in takes_effect_with.items()
        if not takes_effect(values) and _plain(values[name]) != _plain(defaults[name].default)
    ]
    if unused:
        rank_zero_warn(f"{'; '.join(unused)}. This run trains without {'them' if len(unused) > 1 else 'it'}.")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value  # (hyperparameters keep tuples as lists)


def _shown(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)  # as typed on the command line


def check_values(values, valid_values: dict, prefix: str) -> None:
    """Raise ``ConfigurationError`` naming the first option (``--<prefix>.<name>``) of ``values`` that is set and
    fails its test in ``valid_values`` (name: (test, what it must be))."""
    for name, (valid, must_be) in valid_values.items():
        value = values.get(name)
        if value is not None and not valid(value):
            raise ConfigurationError(f"--{prefix}.{name} must be {must_be}, got {value}.")


def check_hparams(hparams) -> None:
    """Raise ``ConfigurationError`` naming the first hyperparameter whose value cannot train."""
    check_values(hparams, VALID_VALUES, "model")
    if hparams["nesterov"] and hparams["momentum"] <= 0:
        raise ConfigurationError("--model.nesterov needs a momentum: add --model.momentum 0.9 (or another value > 0).")
