"""``ResumableRun``: what Lightning's checkpoints leave out for an exact resume, and a clean stop on signals.

- RNG state (torch, CUDA, numpy, random) of every process goes into each checkpoint and comes back on resume,
  so dropout and augmentation continue the same streams (the loader's position and shuffle order are saved by
  Lightning itself, because the training loader is a ``StatefulDataLoader``).
- SIGINT (Ctrl-C), SIGTERM and SIGUSR1 (SLURM's preemption warning) stop training at the next step boundary
  (after an epoch's last step or in its validation: at the epoch's end), write ``last.ckpt`` and make the process
  exit with 128 + the signal number (130, 143, 138). A second Ctrl-C aborts at once without saving. A signal
  ignored when the fit starts (SIGINT under `fit &` in a script) stays ignored.
- Temporary files of a write killed half-way are removed when the next run starts.
- A resume on a different number of processes says plainly what changes.
- Under ``ddp_spawn``, ``ddp_fork`` and ``ddp_notebook`` the workers save at the same boundary, then exit
  themselves (``spawn_stop`` says why).
"""

import os
import signal
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from fashion_lightning._compat import saved_train_position, set_epoch_batches_done, spawned_processes
from fashion_lightning.atomic import remove_stale_temporaries
from fashion_lightning.callbacks.last_checkpoint import last_checkpoint_callback, last_checkpoint_path
from fashion_lightning.quiet import silence_known_noise
from fashion_lightning.rng_state import restore_rng_state, rng_states_of_all_processes
from fashion_lightning.run_claims import mark_training_started
from fashion_lightning.runs import resume_flag
from fashion_lightning.slurm import requeue_slurm_job
from fashion_lightning.spawn_stop import STOP_SIGNALS, end_worker

RNG_KEY = "fashion_lightning_rng"
RUN_KEY = "fashion_lightning_run"
stop_signal: int | None = None  # the signal that stopped the last fit, for the process exit code


class ResumableRun(L.Callback):
    """Exact resume and clean preemption; always installed by the CLI.

    Args:
        resume: How to resume a stopped run, shown with the checkpoint it saved; ``None``: ``--ckpt_path last`` (or
            the file's path, when the run has no ``version_N`` folder for ``last`` to find).
    """

    def __init__(self, resume: str | None = None) -> None:
        self.resume = resume
        self._originals: dict[int, object] = {}
        self._lightning_sigterm = None
        self._handed_over = self._saved = self._spawned = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = last_checkpoint_path(trainer)  # the checkpoint callbacks' directories are resolved by now
        if path is not None and trainer.is_global_zero:
            remove_stale_temporaries(Path(path).parent)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        global stop_signal
        stop_signal = None
        silence_known_noise()  # (in every process: those that ddp_spawn starts run no CLI code)
        if stage == "fit":
            self._handed_over = self._saved = False
            self._lightning_sigterm = None
            self._spawned = spawned_processes(trainer) is not None
            self._originals = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
            if self._spawned:  # (a Ctrl-C before training ended a spawned worker with no result: the launcher hung)
                self._set_handlers()

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_handlers(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install_handlers(trainer)
        mark_training_started()  # a run refused before this point leaves no run folder (run_claims)

    def _install_handlers(self, trainer: L.Trainer) -> None:
        # The Trainer has registered its SIGTERM handler by now (after on_fit_start): ours take its place and hand
        # the stop to it at a step boundary (_hand_over), and the Trainer's teardown puts back the handlers from
        # before the fit even when the fit ends by an exception.
        if self._lightning_sigterm is not None:
            return
        global stop_signal
        self._lightning_sigterm = signal.getsignal(signal.SIGTERM)
        self._set_handlers()
        if self._spawned:  # a stop before this point ends the workers here (all of them: a collective)
            if trainer.received_sigterm:  # (by Lightning's handler, which would end the worker with no result)
                stop_signal = stop_signal or signal.SIGTERM
            if self._stop_agreed(trainer):
                self._hand_over()
                self._end_worker(trainer)

    def _set_handlers(self) -> None:
        self._pid = os.getpid()  # loader workers forked later inherit the handlers (see _request_stop)
        for signum in STOP_SIGNALS:
            # A signal ignored when the fit began stays ignored (`fit &` in a script starts with SIGINT ignored: a
            # Ctrl-C meant for the terminal's foreground job stops no such program), Lightning's handler included.
            ignored = self._originals.get(signum) is signal.SIG_IGN
            signal.signal(signum, signal.SIG_IGN if ignored else self._request_stop)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not self._spawned:  # (a spawned worker ends with the fit: a signal passed on now must not kill it)
            self._restore_handlers()  # a notebook kernel must still die on SIGTERM and stop a cell on Ctrl-C

    def _restore_handlers(self) -> None:
        for signum, handler in self._originals.items():
            signal.signal(signum, handler)
        self._originals = {}

    def _request_stop(self, signum, frame) -> None:
        global stop_signal
        if os.getpid() != self._pid:
            return  # a loader worker (a terminal's Ctrl-C reaches the whole group): the main process stops the run
        if stop_signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait for the step to end
        stop_signal = stop_signal or signum
        if signum == signal.SIGINT:
            rank_zero_info(
                "\nCtrl-C: stopping at the next step boundary (the epoch's end, if its last step or its validation is"
                " under way), saving last.ckpt (Ctrl-C again: abort, no save)."
            )

    def _stop_agreed(self, trainer: L.Trainer) -> bool:
        """Whether any process was asked to stop; under DDP a collective, so every process answers alike (they
        call it at the same points: each training batch's end and each epoch's end)."""
        asked = stop_signal is not None
        if trainer.world_size > 1:
            asked = trainer.strategy.reduce_boolean_decision(asked, all=False)
        return asked

    def _hand_over(self) -> None:
        """Ask for Lightning's clean stop through its handler: it stops at its next check (after this step, or
        at the epoch's end) on every process, since every process hands over at the same point."""
        global stop_signal
        if not self._handed_over:
            self._handed_over = True
            stop_signal = stop_signal or signal.SIGTERM  # (under DDP: maybe another process's signal)
            if callable(self._lightning_sigterm) and not self._spawned:  # (a spawned worker ends itself)
                self._lightning_sigterm(signal.SIGTERM, None)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        # Lightning stops inside a validation that starts after the stop was asked for, and a checkpoint taken
        # between an epoch's last batch and its end resumes one epoch short: after the epoch's last batch, the
        # stop waits for the epoch's end (on_train_epoch_end, after its validation).
        if self._stop_agreed(trainer) and batch_idx + 1 < trainer.num_training_batches:
            self._hand_over()
            if self._spawned:
                self._end_worker(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._stop_agreed(trainer):
            self._hand_over()
            if self._spawned and last_checkpoint_callback(trainer) is None:
                self._save_last(trainer)  # (a LastCheckpoint saves the epoch's state after this hook)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._handed_over and self._spawned:  # stopped at the end of the previous epoch
            self._end_worker(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._handed_over and self._spawned:  # stopped at the end of the last epoch
            self._end_worker(trainer)

    def _end_worker(self, trainer: L.Trainer) -> None:
        """End a spawned worker at the boundary its processes agreed on: the epoch's file that LastCheckpoint wrote
        becomes ``last.ckpt`` (at a step: this step is saved), the stop is reported and the process exits."""
        last = last_checkpoint_callback(trainer)
        self._saved = self._saved or (last is not None and last.commit(trainer))
        self._report_stop(trainer)
        for logger in trainer.loggers:
            logger.finalize("failed")  # (as Lightning does when a fit ends by an exception)
        end_worker(stop_signal)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A validation inside the epoch (val_check_interval) after the step that handed the stop over: Lightning
        # raises in its first batch, so the step's state is saved now (by every process: they handed over alike).
        if self._handed_over and not trainer.sanity_checking:
            self._save_last(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        try:
            if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
                self._report_stop(trainer)
        finally:
            self._restore_handlers()

    def _report_stop(self, trainer: L.Trainer) -> None:
        signum = stop_signal or signal.SIGTERM
        if trainer.training and not self._saved:
            self._save_last(trainer)
        path, name, step = last_checkpoint_path(trainer), signal.Signals(signum).name, trainer.global_step
        if path is None:
            rank_zero_info(f"Stopped by {name} at step {step}; nothing was saved (the run writes no checkpoints).")
        elif self._saved:
            rank_zero_info(
                f"Stopped by {name} at step {step}: saved {path} (resume: {self.resume or resume_flag(path)})."
            )
        else:  # (a stop that Lightning took in a validation without this callback's hand-over, or before training)
            when = "before training" if trainer.sanity_checking else "in validation"
            kept = f"not saved; {path} is kept" if Path(path).exists() else "nothing was saved"
            rank_zero_info(f"Stopped by {name} at step {step}, {when}: {kept}.")
        if signum == getattr(signal, "SIGUSR1", None) and trainer.is_global_zero:
            requeue_slurm_job()

    def _save_last(self, trainer: L.Trainer) -> None:
        last = last_checkpoint_callback(trainer)
        if last is not None:
            self._saved = last.save(trainer)  # (in place of an epoch's file still waiting to be renamed)
        elif (path := last_checkpoint_path(trainer)) is not None:
            trainer.save_checkpoint(path, weights_only=False)
            self._saved = True

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = rng_states_of_all_processes(trainer)
        checkpoint[RUN_KEY] = {"world_size": trainer.world_size, "batch_size": _batch_size(trainer)}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn != "fit":
            # Evaluation uses no randomness from the run, and writes no checkpoint: the state of the callbacks that
            # wrote this file (their folder, their best score) means nothing here, and Lightning would warn that the
            # folder changed when the file was moved or is evaluated under another root.
            states = checkpoint.get("callbacks") or {}
            for callback in trainer.checkpoint_callbacks:
                states.pop(callback.state_key, None)
            return
        self._recount_epoch_batches(trainer, checkpoint)
        run = checkpoint.get(RUN_KEY, {})
        saved_world = run.get("world_size", trainer.world_size)
        states = checkpoint.get(RNG_KEY)
        if states and len(states) == trainer.world_size:
            restore_rng_state(states[trainer.global_rank])
        elif states:
            restore_rng_state(states[0])  # a new process count: streams cannot continue one to one
        if saved_world != trainer.world_size:
            batch = run.get("batch_size") or _batch_size(trainer)
            rank_zero_info(
                f"Resuming a run written by {saved_world} process(es) on {trainer.world_size}: weights, optimizer "
                f"state, epoch and step carry over; the global batch changes from {batch * saved_world} to "
                f"{batch * trainer.world_size} (batch {batch} per process); if the checkpoint is mid-epoch, the "
                "rest of that epoch is drawn in a different order than the interrupted run would have used."
            )

    @staticmethod
    def _recount_epoch_batches(trainer: L.Trainer, checkpoint: dict) -> None:
        """Lightning's count of the interrupted epoch's batches, in this fit's batch layout (see ``_compat``)."""
        position = saved_train_position(checkpoint)
        if position is not None and hasattr(trainer.datamodule, "train_batches_within"):
            set_epoch_batches_done(checkpoint, trainer.datamodule.train_batches_within(position))


def _batch_size(trainer: L.Trainer) -> int | None:
    datamodule = trainer.datamodule
    return getattr(getattr(datamodule, "hparams", None), "batch_size", None)
