"""Folders a ``fit`` writes into without claiming a new ``version_N``, guarded like one: a logger version given on
purpose (``--trainer.logger.init_args.version``), and checkpoint folders that no claim keeps apart. Without a
logger, Lightning writes every run's checkpoints to ``<default_root_dir>/checkpoints``, and
``--checkpoint.dirpath``/``--last.dirpath`` name one folder for every run given them. The files keep fixed names
(``best.ckpt``, ``last.ckpt``), so a second ``fit`` there would write over the first run's. Each such folder is
locked while a ``fit`` writes it, and refused, while it holds checkpoints, to a ``fit`` that does not continue their
run (no ``--ckpt_path``, or one from elsewhere).
"""

from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from fashion_lightning.errors import ConfigurationError
from fashion_lightning.logger_layout import first_logger
from fashion_lightning.run_claims import remember_claim
from fashion_lightning.run_lock import lock_run


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


def held_checkpoints(checkpoints_dir: Path) -> list[str]:
    """The names of the checkpoint files in ``checkpoints_dir``, sorted."""
    return sorted(path.name for path in Path(checkpoints_dir).glob("*.ckpt"))


def hold(folder: Path, what: str) -> None:
    """Lock ``folder`` for this ``fit`` (``what``: how a refusal names it); one it creates is removed again if the
    run never starts."""
    if not folder.exists():
        remember_claim(folder)
    lock_run(folder, what=what)


def enter_given_run_dir(run_dir: Path, ckpt_path: str | None) -> None:
    """A fit into a run folder the user named: locked; refused if the folder holds a run this fit does not
    continue."""
    if rank_zero_only.rank != 0:
        return
    held = held_checkpoints(run_dir / "checkpoints")
    if held and not continues_from(ckpt_path, run_dir / "checkpoints"):
        raise ConfigurationError(
            f"The logger's version points this fit at '{run_dir}', which already holds a run ({', '.join(held)}), "
            "and this fit (no --ckpt_path, or another run's) would write over it. To continue that run, use "
            "--ckpt_path last (or one of its checkpoints); to start a new run, leave the version out "
            "(--trainer.logger.init_args.version null, or delete `version:` from the config file)."
        )
    hold(run_dir, "The run")


def enter_checkpoint_folders(folders: list[Path], ckpt_path: str | None) -> None:
    """Lock each of ``folders`` for this ``fit``. Unless it continues a run of theirs (``ckpt_path`` in one of them),
    folders holding checkpoints are refused (``ConfigurationError``)."""
    if rank_zero_only.rank != 0:
        return
    continuing = any(continues_from(ckpt_path, folder) for folder in folders)
    for folder in folders:
        held = held_checkpoints(folder)
        if held and not continuing:
            raise ConfigurationError(_would_write_over(folder, held))
    for folder in folders:
        hold(folder, "The checkpoint folder")


def _would_write_over(folder: Path, held: list[str]) -> str:
    last = folder / "last.ckpt"
    return (
        f"'{folder}' already holds checkpoints of another run ({', '.join(held)}), and this fit would write over "
        "them: without a logger's version_N folders (--trainer.logger false) or with --checkpoint.dirpath/"
        "--last.dirpath, every run writes its checkpoints there. To continue that run, use --ckpt_path "
        f"{last if last.is_file() else 'CHECKPOINT'}; to start a new one, give it another folder "
        "(--trainer.default_root_dir DIR, or --checkpoint.dirpath DIR), or keep a TensorBoard or CSV logger."
    )
