"""``fit --test_after_fit true``: a fit that ends by testing its best checkpoint, in the same process.

``fashion-lightning test --ckpt_path best`` after the fit gives the same numbers, but from a second process that
imports Lightning again, starts CUDA again and loads the data again: 13.8 s of the CNN recipe's 45.2 s on an H200
(README, Performance).
"""

import warnings

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities import rank_zero_info


def test_after_fit(trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule) -> None:
    """Test the run's best checkpoint (``best.ckpt``) on the test images, logging into the run's own folder; the
    final weights where the run has no best checkpoint. A fit that did not finish (stopped, failed) tests nothing."""
    if trainer.state.status != TrainerStatus.FINISHED:  # (a stop signal ends the fit by an exception: never here)
        return
    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "")  # ("" without a checkpoint callback)
    if not best:
        # Lightning's ckpt_path="best" would raise here; the user asked for a test, so say which weights it is of.
        why = "no checkpoints are written" if checkpoint is None else "no validation chose one"
        rank_zero_info(f"--test_after_fit: no best checkpoint ({why}); testing the weights the fit ended with.")
    # A WeightAveraging callback (EMAWeightAveraging) that has averaged in this fit loads a checkpoint's raw weights
    # over its average, which the checkpoint holds as the model's: it would test the raw weights, where `test` tests
    # the average. It does nothing else in a test, so it sits this one out.
    callbacks = trainer.callbacks
    trainer.callbacks = [callback for callback in callbacks if not isinstance(callback, WeightAveraging)]
    try:
        with warnings.catch_warnings():  # (Lightning's advice to add back the callback just left out)
            warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks used")
            # An explicit path, not "best": beside --last, Lightning would warn that it takes the first one's.
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
    finally:
        trainer.callbacks = callbacks
