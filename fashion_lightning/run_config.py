"""``RunConfigSaver``: the resolved config saved in each run folder, so that it replays the run."""

from lightning.pytorch.cli import SaveConfigCallback

from fashion_lightning import options


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config as ``config.yaml`` for fit and ``config.<stage>.yaml`` otherwise.

    Evaluating or resuming a checkpoint logs into the run it came from; a test never overwrites how the run
    was trained. A logger version that the CLI chose (the next free ``version_N``, or the resumed checkpoint's) is
    saved as ``null``: ``fit --config <run>/config.yaml`` then starts a new run instead of writing over this one.

    Args:
        chosen_version: Whether the CLI chose the logger's version (set by the CLI before the run starts).
    """

    def __init__(self, *args, chosen_version: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.chosen_version = chosen_version

    def setup(self, trainer, pl_module, stage: str) -> None:
        stage = str(getattr(stage, "value", stage))  # "fit", "validate", "test", "predict"
        self.config_filename = "config.yaml" if stage == "fit" else f"config.{stage}.yaml"
        if self.chosen_version and not self.already_saved:
            self.config = self.config.clone()
            options.set_run_version(self.config, None)
        super().setup(trainer, pl_module, stage)
