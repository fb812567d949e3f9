"""What a sweep trial's ``fit`` tells the Optuna study: its run folder and metric (``TrialReporter``), and, for the
pruner, the metric once an epoch (``EpochEndPruning``)."""

from pathlib import Path

import lightning as L
import optuna
from optuna_integration.pytorch_lightning import PyTorchLightningPruningCallback

from fashion_lightning._compat import spawned_processes
from fashion_lightning.callbacks.monitoring import unlogged_key
from fashion_lightning.errors import ConfigurationError


class TrialReporter(L.Callback):
    """Records the trial's run folder before training and its metric after every validation, in the storage."""

    def __init__(self, trial: optuna.Trial, metric: str, earlier: list[float]) -> None:
        self.trial, self.metric, self.values = trial, metric, list(earlier)
        self._metric_checked = False

    def on_fit_start(self, trainer, pl_module) -> None:
        if spawned_processes(trainer) is not None:  # (this runs in a worker there: its values would stay there)
            raise ConfigurationError(
                "A sweep cannot run its trials under --trainer.strategy ddp_spawn, ddp_fork or ddp_notebook: their "
                "processes report to the sweep from elsewhere. Use --trainer.strategy ddp (or auto) for a trial on "
                "several devices."
            )
        if trainer.is_global_zero:
            self.trial.set_user_attr("run_dir", str(Path(trainer.log_dir).absolute()))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._metric_checked:  # the first validation: the sanity check's, before the first trial trains
            self._metric_checked = True
            problem = unlogged_key(trainer, pl_module, self.metric)
            if problem:  # (and before RunSummary names --checkpoint.monitor, set to the metric)
                raise ConfigurationError(f"--metric {self.metric}: {problem} Set --metric to one of them.")
        value = trainer.callback_metrics.get(self.metric)
        if trainer.sanity_checking or value is None or not trainer.is_global_zero:
            return
        self.values.append(float(value))
        self.trial.set_user_attr("values", self.values)  # a retried trial continues from these


class EpochEndPruning(PyTorchLightningPruningCallback):
    """optuna-integration's pruning callback, reporting the metric once an epoch: at the epoch's end, the last
    validation's value.

    Its own report runs after every validation, at the epoch as Optuna's step (so that trials of other batch sizes
    compare at the same epochs). With validations inside an epoch (``--trainer.val_check_interval``), each one after
    the first reported that epoch again, which Optuna ignored with a warning each time.
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__(trial, monitor)
        self._validated = False  # a validation ran in this epoch

    def on_validation_end(self, trainer, pl_module) -> None:
        self._validated = self._validated or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._validated:
            self._validated = False
            super().on_validation_end(trainer, pl_module)  # report, and prune if the pruner says so
