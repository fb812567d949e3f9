"""``RunConfigSaver``: the resolved config saved in each run folder, so that it replays the run."""

from lightning.pytorch.cli import SaveConfigCallback

from fashion_lightning import logger_layout


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config as ``config.yaml`` for fit and ``config.<stage>.yaml`` otherwise.

    Evaluating or resuming a checkpoint logs into the run it came from; a test never overwrites how the run
    was trained. A logger version that the CLI chose (the next free ``version_N``, or the resumed checkpoint's) is
    saved as ``null`` (so is one chosen for a logger writing elsewhere): ``fit --config <run>/config.yaml`` then starts
    a new run instead of writing over this one. A fit that resumed the run saves how the run trains, not how it was
    resumed (no ``ckpt_path``, no TensorBoard ``purge_step``): replayed, it trains the whole run again.

    Args:
        chosen_version: Whether the CLI chose the run's version (set by the CLI before the run starts).
        chosen_elsewhere: Positions in the logger list of the loggers writing outside the run's folder whose
            versions the CLI chose.
        resumed: Whether this fit resumed the run from one of its own checkpoints.
    """

    def __init__(
        self,
        *args,
        chosen_version: bool = False,
        chosen_elsewhere: tuple[int, ...] = (),
        resumed: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.chosen_version, self.chosen_elsewhere, self.resumed = chosen_version, chosen_elsewhere, resumed

    def setup(self, trainer, pl_module, stage: str) -> None:
        stage = str(getattr(stage, "value", stage))  # "fit", "validate", "test", "predict"
        self.config_filename = "config.yaml" if stage == "fit" else f"config.{stage}.yaml"
        if (self.chosen_version or self.chosen_elsewhere or self.resumed) and not self.already_saved:
            self.config = self.config.clone()
            if self.chosen_version:
                logger_layout.set_run_version(self.config, None)
            logger_layout.set_logger_versions(self.config, self.chosen_elsewhere, None)
            if self.resumed:
                self.config.ckpt_path = None
                logger_layout.set_purge_step(self.config, None)
        super().setup(trainer, pl_module, stage)
