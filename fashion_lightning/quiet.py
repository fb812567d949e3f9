"""A quiet console: third-party messages that a default run prints and that no user can act on, silenced by
their exact text, in this one place, and Optuna's traceback of a trial that this project's own error stopped (the
CLI prints that error as one paragraph). Anything else, and any message of this project, still shows.

Each entry names where it comes from; drop it once the upstream fix is released and required.
"""

import logging
import re
import warnings

from fashion_lightning.errors import FashionLightningError, own_error

# (message regex, category, where it comes from)
KNOWN_WARNINGS = (
    # torchdata 0.11's StatefulDataLoader calls torch.set_vital, a stub torch deprecated; fixed in
    # meta-pytorch/data#1537 (not released).
    (r"'set_vital' is deprecated", UserWarning, "torchdata 0.11"),
    # Lightning 2.6.6's utilities/_pytree.py checks isinstance(treespec, LeafSpec) (Lightning #21326).
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, "lightning 2.6.6"),
    # LightningCLI 2.6 calls jsonargparse APIs deprecated in jsonargparse 4.49 (Lightning #21900).
    (r"(?s).*``ArgumentParser.add_instantiator`` was deprecated", Warning, "lightning.pytorch.cli + jsonargparse"),
    (r"(?s).*``instantiate_classes`` was deprecated", Warning, "lightning.pytorch.cli + jsonargparse"),
    (r"(?s).*skip_none parameter was deprecated", Warning, "lightning.pytorch.cli + jsonargparse"),
    # ... and jsonargparse's notice, shown with the first of them, that it shows one per kind.
    (r"(?s)\s*By default only one JsonargparseDeprecationWarning", Warning, "jsonargparse"),
    # LightningCLI warns when it is given args while sys.argv holds arguments (Lightning #16807). cli_main(args)
    # from a notebook or a test is the documented way to run from Python; the kernel's argv is not the user's.
    (r"LightningCLI's args parameter is intended to run from within Python", UserWarning, "lightning.pytorch.cli"),
    # Lightning compares its training batches with log_every_n_steps, but a batch here holds --data.steps_per_batch
    # optimizer steps and step values are written at optimizer steps; StepLog.check_interval warns on
    # those instead.
    (r"The number of training batches \(\d+\) is smaller than the logging interval", UserWarning, "lightning fit_loop"),
    # Strategy.all_gather (resume.py gathers every process's RNG state with it) calls a torch.distributed function
    # that torch 2.14 deprecates; Lightning 2.6.6 has no other path.
    (r"torch\.distributed\.nn\.functional\.all_gather is deprecated", FutureWarning, "lightning.fabric + torch"),
    # ModelCheckpoint warns whenever its folder has files; a resumed run writes into its own folder on purpose.
    (r"Checkpoint directory .* exists and is not empty", UserWarning, "lightning ModelCheckpoint"),
    # CSVLogger warns the same on a resume; its metrics.csv is moved aside first (runs.keep_csv_metrics), and a
    # new run's folder is always empty (run_claims.claim_version).
    (r"Experiment logs directory .* exists and is not empty", UserWarning, "lightning CSVLogger"),
    # ModelCheckpoint warns "Did you call log('val/acc')?" when a fit ends before its first validation (--trainer.
    # max_steps inside the first epoch); once a validation has run, a missing key is an error, which still shows.
    # RunSummary says why there is no best checkpoint.
    (r"`ModelCheckpoint\(monitor='val/[^']*'\)` could not find the monitored key", UserWarning, "lightning"),
    # --trainer.logger.log_graph true: Lightning's TensorBoardLogger draws the graph with torch.jit.trace, which
    # torch 2.14 deprecates (twice per run); Lightning 2.6.6 has no other path.
    (r"`torch\.jit\.trace(_method)?` is deprecated", FutureWarning, "lightning TensorBoardLogger + torch"),
    # --trainer.precision bf16-mixed or 16-mixed: Lightning's model summary sizes the parameters at 32 bits, as
    # they are stored under mixed precision, and says so at every fit (Lightning 2.6.6's model_summary.py).
    (r"Precision \S+-mixed is not supported by the model summary", UserWarning, "lightning ModelSummary"),
    # Lightning suggests loader workers on any machine with more than 2 CPUs. A batch here is one index operation on
    # tensors already in memory (on a GPU, workers cannot hand them out at all): workers only add copies between
    # processes, so --data.num_workers is 0 by default, and the advice would slow the run down.
    (r"The '\w+' does not have many workers which may be a bottleneck", UserWarning, "lightning data_connector"),
    # IPython warns after any SystemExit in a notebook cell; cli_main ends a run that way on purpose, with its exit
    # status, after printing what stopped it.
    (r"To exit: use 'exit', 'quit', or Ctrl-D\.", UserWarning, "IPython (a notebook's cell)"),
    # Heartbeats and retrying stale trials are what make a sweep survive kill -9; Optuna marks them experimental.
    (r"(?s).*(RetryHeartbeatStaleTrialCallback[.\w]*|fail_stale_trials) is experimental", Warning, "optuna (sweep)"),
    (r"Argument ``heartbeat_interval`` is an experimental feature", Warning, "optuna (sweep)"),
)
KNOWN_LOG_PATTERNS = (
    # Logged by Lightning's SIGTERM handler, which ResumableRun calls to stop at a step boundary also on Ctrl-C
    # (SIGINT); it then says "Stopped by SIGINT at step N: saved ..." itself.
    r"(\[rank: \d+\] )?Received SIGTERM: \d+",
    # Logged by torch's launcher of ddp_spawn's workers when one has exited and it ends the others: after a stop
    # signal, the workers all save and exit at the same step (spawn_stop); a worker's error is still reported.
    r"Terminating process %s via signal SIGTERM",
)
KNOWN_LOG_PREFIXES = (
    # Logged (not warned) on every Trainer start by Lightning 2.6's logger connector; no switch (Lightning #21294).
    "💡 Tip: For seamless cloud logging",
    # Logged by Lightning's checkpoint connector when LearningRateFinder/BatchSizeFinder save their temporary
    # checkpoint (they pass no weights_only; the file is theirs and removed after the search).
    "`weights_only` was not set, defaulting to `False`.",
    # Logged by torch.utils.cpp_extension when --model.compile imports it on a machine whose torch is a CUDA build
    # but which has no CUDA runtime: the compiled step runs on the CPU and needs none.
    "No CUDA runtime is found, using CUDA_HOME=",
)
NOISY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.signal_connector",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.trainer.connectors.checkpoint_connector",
    "torch.utils.cpp_extension",
    "torch.multiprocessing.spawn",
)


class _DropKnownLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        known = message.startswith(KNOWN_LOG_PREFIXES) or any(re.match(p, message) for p in KNOWN_LOG_PATTERNS)
        return not known


def silence_known_noise() -> None:
    """Install the filters (idempotent): warnings by message and category, log lines by prefix."""
    for message, category, _origin in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _DropKnownLines) for existing in logger.filters):
            logger.addFilter(_DropKnownLines())


class _ReportedElsewhere(logging.Filter):
    """Drops Optuna's report of a trial that this project's own error failed (a bad option found once the trial
    runs): its traceback, then "Trial N failed with value None.". The sweep stops on such an error, and the CLI
    prints it as one paragraph. Any other error keeps Optuna's report."""

    def __init__(self) -> None:
        super().__init__()
        self._follow_up: str | None = None  # the start of the second line to drop

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if record.exc_info and isinstance(own_error(record.exc_info[1]), FashionLightningError):
            self._follow_up = message.partition(" failed with parameters")[0] + " failed with value "
            return False
        if self._follow_up and message.startswith(self._follow_up):
            self._follow_up = None
            return False
        return True


def quiet_optuna_reports() -> None:
    """Install ``_ReportedElsewhere`` on Optuna's console handler (idempotent)."""
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(existing, _ReportedElsewhere) for existing in handler.filters):
            handler.addFilter(_ReportedElsewhere())
