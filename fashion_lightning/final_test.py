"""``fit --test_after_fit true``: a fit that ends by testing its best checkpoint, in the same process.

``fashion-lightning test --ckpt_path best`` after the fit gives the same numbers, but from a second process that
imports Lightning again (~3 s on a 2-core CPU, ~8 s where torchmetrics pulls in torchvision's models and
transformers), starts CUDA again and loads the data again: 14 s of the CNN recipe's 45 s on an H200.
"""

import lightning as L
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities import rank_zero_info

from fashion_lightning.callbacks import resume


def test_after_fit(trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule) -> None:
    """Test the run's best checkpoint (``best.ckpt``) on the test images, logging into the run's own folder; the
    final weights where the run has no best checkpoint. A fit that did not finish (stopped, failed) tests nothing."""
    if trainer.state.status != TrainerStatus.FINISHED or resume.stop_signal is not None:
        return
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") if checkpoint is not None else ""
    if not best:
        # Lightning's ckpt_path="best" would raise here; the user asked for a test, so say which weights it is of.
        why = "no checkpoints are written" if checkpoint is None else "no validation chose one"
        rank_zero_info(f"--test_after_fit: no best checkpoint ({why}); testing the weights the fit ended with.")
    # An explicit path, not "best": beside --last, Lightning would warn that it takes the first checkpoint callback's.
    trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
