"""SLURM's requeue: a job stopped by SIGUSR1 (SLURM's warning before its time limit) goes back in the queue."""

import os
import subprocess

from lightning.pytorch.utilities import rank_zero_info


def requeue_slurm_job() -> None:
    """Put this SLURM job back in the queue (it resumes with ``--ckpt_path last``); no-op outside SLURM."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)  # noqa: S603, S607
    status = "requeued" if result.returncode == 0 else f"could not be requeued ({result.stderr.strip()})"
    rank_zero_info(f"SLURM job {job} {status}.")
