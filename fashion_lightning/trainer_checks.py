"""What the values of the Trainer's options must be, checked before anything is created on disk.

Lightning takes these values when the Trainer is created, then fails on them from deep inside fit (a
``ZeroDivisionError`` for ``check_val_every_n_epoch 0``) or stops without a word (``min_epochs`` above
``max_epochs``). Values Lightning refuses itself, with its own one-line error, are left to it.
"""

from fashion_lightning.errors import ConfigurationError
from fashion_lightning.hparam_checks import check_values

# name: (test of a value that is set, what it must be)
VALID_VALUES = {
    "max_epochs": (lambda v: v >= -1, "a positive number of epochs (or -1 for no limit)"),
    "check_val_every_n_epoch": (
        lambda v: v >= 1,
        "at least 1 (or null, with an integer --trainer.val_check_interval: validate every that many batches)",
    ),
    "val_check_interval": (  # (a float is a fraction of the epoch, checked by Lightning; an int counts batches)
        lambda v: not isinstance(v, int) or v >= 1,
        "a number of training batches of at least 1, a fraction of the epoch (0.25: four times an epoch) or a "
        "duration (DD:HH:MM:SS)",
    ),
    "log_every_n_steps": (lambda v: v >= 0, "at least 0 (0: no per-step values)"),
}


def check_trainer_values(trainer) -> None:
    """Raise ``ConfigurationError`` naming the first ``--trainer`` option whose value cannot run."""
    check_values(trainer, VALID_VALUES, "trainer")
    for unit in ("epochs", "steps"):  # (Lightning stops at the maximum without a word)
        low, high = trainer.get(f"min_{unit}"), trainer.get(f"max_{unit}")
        if low is not None and high is not None and high >= 0 and low > high:
            raise ConfigurationError(
                f"--trainer.min_{unit} {low} is more than --trainer.max_{unit} {high}: raise max_{unit} or lower "
                f"min_{unit}."
            )
