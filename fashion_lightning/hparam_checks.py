"""What the values of a ``FashionClassifier``'s hyperparameters must be, checked before anything is built."""

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
