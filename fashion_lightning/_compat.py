"""The one place for a non-public API this project cannot do without; each use says why and has a test.

- ``tensorboard_file_writer``: TensorBoard's HParams tab needs an experiment summary naming the metric tags
  (``val/acc_best``, ``test/acc``, ``test/loss``) in the run's own event file. The public ways write it
  elsewhere or wrongly: ``SummaryWriter.add_hparams`` opens a separate sub-run, and Lightning's
  ``TensorBoardLogger.log_hyperparams(params, metrics)`` also logs those metrics as scalars at step 0, which would
  put a false 0 at the start of every curve. Lightning's logger itself uses the same private call.
"""

from torch.utils.tensorboard import SummaryWriter


def tensorboard_file_writer(writer: SummaryWriter):
    """The ``FileWriter`` behind a ``SummaryWriter`` (re-opened if the writer was closed)."""
    return writer._get_file_writer()
