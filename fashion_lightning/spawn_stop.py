"""Stop signals under ``ddp_spawn``, ``ddp_fork`` and ``ddp_notebook``, whose processes Lightning starts itself.

There the fit runs in worker processes, and the process the user started only waits for them. Lightning's own stop
(``SIGTERMException``) ends a worker without ``on_exception`` hooks and without handing the launcher its result,
and the launcher then waited for ever; a SIGTERM to the launching process killed it and left the workers behind.
So, under these launchers:

- the launching process passes a stop signal on to the workers (SIGINT as SIGTERM: a terminal's Ctrl-C reaches
  the workers too, and a second SIGINT there means "abort");
- each worker stops at the same step boundary as under ``ddp``, saves ``last.ckpt`` and says so
  (``ResumableRun``), then exits with 128 + the signal number (``end_worker``);
- the CLI exits with that code (``stop_exit_code``).
"""

import multiprocessing
import os
import signal
import sys

from lightning.pytorch.utilities import rank_zero_info
from torch.multiprocessing import ProcessExitedException

from fashion_lightning._compat import spawned_processes
from fashion_lightning.run_claims import mark_training_started, release_unused_claims

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1") if hasattr(signal, name))
_originals: dict[int, object] = {}
_received: int | None = None  # the first stop signal the launching process received


def forward_stop_signals(trainer) -> None:
    """In the launching process of a multiprocessing launcher, pass stop signals on to the workers until
    ``stop_forwarding``; does nothing under other launchers (the fit's process handles them itself)."""
    global _received
    if spawned_processes(trainer) is None or _originals:
        return
    _received = None
    # Whether the workers trained is not known here: a run folder with any trace of a run must outlive an abort.
    mark_training_started()

    def forward(signum, frame) -> None:
        global _received
        if signum == signal.SIGINT and _received == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: abort at once, as in a fit without spawned workers
        processes = spawned_processes(trainer)
        if not processes:
            # The launcher is still starting them (it knows them once all have started): nothing trained yet. Those
            # started would wait for ever for the others, and the launcher for one that died while it started: end
            # them, then stop as without this handler.
            for process in multiprocessing.active_children():
                os.kill(process.pid, signal.SIGTERM)
            release_unused_claims(started=False)  # (a new run's folder)
        workers = [process for process in processes or [] if process.is_alive()]
        if not workers:  # (not started, or the fit is over)
            stop_forwarding()
            signal.raise_signal(signum)
            return
        _received = _received or signum
        for process in workers:
            os.kill(process.pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in STOP_SIGNALS:
        original = signal.getsignal(signum)
        if original is not signal.SIG_IGN:  # (a signal ignored when the fit began stays ignored)
            _originals[signum] = original
            signal.signal(signum, forward)


def stop_forwarding() -> None:
    """Put back the handlers ``forward_stop_signals`` replaced."""
    while _originals:
        signum, handler = _originals.popitem()
        signal.signal(signum, handler)


def end_worker(signum: int) -> None:
    """End a spawned worker that has saved and reported its stop: exit status 128 + ``signum``, which the launcher
    raises in the launching process as ``ProcessExitedException``."""
    sys.stdout.flush()
    raise SystemExit(128 + signum)


def stop_exit_code(error: ProcessExitedException) -> int:
    """The exit status for a fit whose spawned worker ended as ``error``: 128 + the stop signal; ``error`` is
    raised again where the worker failed otherwise."""
    code = error.exit_code
    if code - 128 in STOP_SIGNALS:  # a worker that stopped cleanly (it said what it saved)
        return 128 + (_received or code - 128)
    if _received and code in (1, *(-signum for signum in STOP_SIGNALS)):  # one ended before its handlers were in
        release_unused_claims(started=True)  # place (an empty new run folder goes; one a worker wrote in stays)
        rank_zero_info(f"Stopped by {signal.Signals(_received).name} before training: nothing was saved.")
        return 128 + _received
    if code < 0:  # killed from outside: SIGKILL (out of memory?), or a signal before its handlers were in place
        name = signal.Signals(-code).name
        rank_zero_info(
            f"A training process was killed by {name}; nothing more was saved (a last.ckpt already written is kept:"
            " resume with --ckpt_path last)."
        )
        return 128 - code
    raise error
