"""Values of Lightning's own classes that jsonargparse cannot write into YAML, made writable (imported by the CLI).

jsonargparse writes each option to YAML: to save ``config.yaml``, for ``--print_config``, and also while parsing a
callback given on the command line (its arguments go through YAML once). Two defaults of Lightning's callbacks
were not writable, with plain ``LightningCLI`` too:

- ``torch.device`` (``StochasticWeightAveraging(device=torch.device("cpu"))``): the saved config held "Unable to
  serialize instance cpu", which it then could not load. Now written as ``cpu`` and read back as a device.
- an enum that is a ``str`` (``Timer(interval=Interval.step)``): ``--trainer.callbacks+=Timer`` stopped with a
  traceback ("cannot represent an object"). Now written as its value, ``step``, which the callback accepts.
"""

import enum

import torch
import yaml
from jsonargparse.typing import register_type

register_type(torch.device, serializer=str, deserializer=torch.device)


def _represent_str_enum(dumper: yaml.SafeDumper, value: enum.Enum) -> yaml.Node:
    if isinstance(value, str):
        return dumper.represent_str(value.value)
    return dumper.represent_undefined(value)  # other enums: YAML's own error, as before


yaml.SafeDumper.add_multi_representer(enum.Enum, _represent_str_enum)
