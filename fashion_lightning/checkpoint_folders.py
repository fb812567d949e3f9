"""Checkpoint folders that no ``version_N`` claim keeps apart: without a logger, Lightning writes every run's
checkpoints to ``<default_root_dir>/checkpoints``, and ``--checkpoint.dirpath``/``--last.dirpath`` name one folder
for every run given them. The files keep fixed names (``best.ckpt``, ``last.ckpt``), so a second ``fit`` there
would write over the first run's. Such a folder is treated as a run's folder: locked while a ``fit`` writes it, and
refused, while it holds checkpoints, to a ``fit`` that does not continue their run (no ``--ckpt_path``, or one from
elsewhere).
"""

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from fashion_lightning.errors import ConfigurationError
from fashion_lightning.options import first_logger
from fashion_lightning.run_lock import lock_run
from fashion_lightning.runs import remember_claim


def unclaimed_checkpoint_folders(config) -> list[Path]:
    """The folders a ``fit`` of ``config`` writes checkpoints to that are not inside a ``version_N`` it claims."""
    trainer = config.trainer
    if trainer.get("enable_checkpointing") is False or trainer.get("fast_dev_run"):
        return []
    # Lightning's place without a logger; with one, <save_dir>/<name>/<version>/checkpoints (a claimed version_N,
    # or a W&B/MLflow run's own id).
    default = None if first_logger(config) else Path(trainer.get("default_root_dir") or ".") / "checkpoints"
    best_dir = (config.get("checkpoint") or {}).get("dirpath")
    last_dir = (config.get("last") or {}).get("dirpath") or best_dir  # (LastCheckpoint writes beside best.ckpt)
    folders = [Path(given) if given else default for given in (best_dir, last_dir)]
    return list(dict.fromkeys(folder.absolute() for folder in folders if folder is not None))


def continues_from(ckpt_path: str | None, checkpoints_dir: Path) -> bool:
    """Whether a fit from ``ckpt_path`` continues the run whose checkpoints are in ``checkpoints_dir``."""
    return ckpt_path is not None and Path(ckpt_path).absolute().parent == checkpoints_dir.absolute()


def enter_checkpoint_folders(folders: list[Path], ckpt_path: str | None) -> None:
    """Lock each of ``folders`` for this ``fit``. Unless it continues a run of theirs (``ckpt_path`` in one of them),
    folders holding checkpoints are refused (``ConfigurationError``)."""
    if rank_zero_only.rank != 0:
        return
    continuing = any(continues_from(ckpt_path, folder) for folder in folders)
    for folder in folders:
        held = sorted(path.name for path in folder.glob("*.ckpt"))
        if held and not continuing:
            raise ConfigurationError(_would_write_over(folder, held))
    for folder in folders:
        if not folder.exists():
            remember_claim(folder)  # (removed again if the run never starts)
        lock_run(folder, what="The checkpoint folder")


def _would_write_over(folder: Path, held: list[str]) -> str:
    last = folder / "last.ckpt"
    return (
        f"'{folder}' already holds checkpoints of another run ({', '.join(held)}), and this fit would write over "
        "them: without a logger's version_N folders (--trainer.logger false) or with --checkpoint.dirpath/"
        "--last.dirpath, every run writes its checkpoints there. To continue that run, use --ckpt_path "
        f"{last if last.is_file() else 'CHECKPOINT'}; to start a new one, give it another folder "
        "(--trainer.default_root_dir DIR, or --checkpoint.dirpath DIR), or keep a TensorBoard or CSV logger."
    )
