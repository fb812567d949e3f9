"""Values of Lightning's own classes that jsonargparse cannot write into YAML or reads wrong, fixed (imported by the
CLI).

jsonargparse writes each option to YAML: to save ``config.yaml``, for ``--print_config``, and also while parsing a
callback given on the command line (its arguments go through YAML once). Two defaults of Lightning's callbacks
were not writable, with plain ``LightningCLI`` too:

- ``torch.device`` (``StochasticWeightAveraging(device=torch.device("cpu"))``): the saved config held "Unable to
  serialize instance cpu", which it then could not load. Now written as ``cpu`` and read back as a device.
- an enum that is a ``str`` (``Timer(interval=Interval.step)``): ``--trainer.callbacks+=Timer`` stopped with a
  traceback ("cannot represent an object"). Now written as its value, ``step``, which the callback accepts.

- a pruning function's name (``ModelPruning(pruning_fn="l1_unstructured")``, annotated ``Union[Callable, str]``):
  jsonargparse wrote the str with the Callable's import-path writer, which returns "Unable to serialize instance
  l1_unstructured" rather than failing, so the saved config did not replay. From a command line or a config file only a
  name can work (a function is refused by ``ModelPruning``, and jsonargparse would instantiate a ``BasePruningMethod``
  class that the callback wants uninstantiated), so ``pruning_fn`` is read as a ``str`` here; anything else gets
  ``ModelPruning``'s own one-paragraph refusal listing the names.

And one type was read wrong: ``--trainer.limit_train_batches 1`` (one batch, as Lightning documents for an int)
became 1.0, all the batches. The Trainer annotates ``Optional[Union[int, float]]``, but typing's cache treats that as
equal to the ``Optional[Union[float, int]]`` that ``lightning/fabric/fabric.py`` built first and returns that object,
float first, which jsonargparse tries first. The four ``limit_*_batches`` get ``Union[int, float, None]`` (int
first), built here without the cache's help.
"""

import enum
from typing import Union

import torch
import yaml
from jsonargparse.typing import register_type
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelPruning

for _name in ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches"):
    Trainer.__init__.__annotations__[_name] = Union[int, float, None]  # noqa: UP007 (X | Y builds no typing.Union)

ModelPruning.__init__.__annotations__["pruning_fn"] = str

register_type(torch.device, serializer=str, deserializer=torch.device)


def _represent_str_enum(dumper: yaml.SafeDumper, value: enum.Enum) -> yaml.Node:
    if isinstance(value, str):
        return dumper.represent_str(value.value)
    return dumper.represent_undefined(value)  # other enums: YAML's own error, as before


yaml.SafeDumper.add_multi_representer(enum.Enum, _represent_str_enum)
