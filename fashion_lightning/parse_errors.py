"""The command line's parsers, which say in one line what an option of the wrong type takes, and which options a
misspelled flag may have meant.

jsonargparse reports a value that fits none of an option's types with every type it tried, as Python writes them
(``Subtypes: [<class 'int'>, <class 'NoneType'>]``: up to 15 lines for ``--trainer.precision 17``), a class's bad
option inside that list, and a value given to a linked option as ``... is not callable``. These parsers say:

- ``--trainer.max_epochs: got abc, expected an integer or null.``
- ``--trainer.callbacks.patiense: EarlyStopping has no option patiense; ...``
- ``--trainer.callbacks: cannot import my.module.Cb (No module named 'my'); expected ...``
- ``--trainer.logger: CSVLogger needs --trainer.logger.save_dir, given after the class ...``
- ``--model.num_classes is set from data.num_classes (a link): ...``
- ``--config: File does not exist: ...`` (any other one-line message about one option, named as a flag)
- ``unrecognized arguments: --trainer.maxepochs 3 (did you mean --trainer.max_epochs?)``

The rest (a missing value, say) is left as it is. ``unknown_command`` is ``cli_main``'s: the parsers know only their
own commands.
"""

import difflib
import re
from typing import NoReturn

from jsonargparse import ArgumentParser
from lightning.pytorch.cli import LightningArgumentParser

from fashion_lightning.errors import ConfigurationError

KEY = re.compile(r'Parser key "([^"]+)":')
SUBTYPES = re.compile(r"^\s*Subtypes: \[(.*)\]\s*$", re.MULTILINE)  # a Union's
EXPECTED = re.compile(r"^\s*Expected an? (.*?)\. Got value: ", re.MULTILINE)  # a single type's
GIVEN = re.compile(r"(?:Given|Got) value: (.*)$", re.MULTILINE)
# A class's own option (--trainer.logger.flush_logs_every_n_steps): the class's parser has made it one line already.
NESTED = re.compile(r"Problem with given class_path '[^']*':\s*\n\s*--([\w.]+): (got .*)$", re.MULTILINE)
# A class given by an import path that does not import: no such module, or no such class in it.
UNIMPORTABLE = re.compile(
    r"Problem with given class_path '([\w.]+)':\s*\n\s*"
    r"(No module named '[^']*'|module '[^']*' has no attribute '[^']*')"
)
# A class given without a value it requires (--trainer.logger+=CSVLogger without its save_dir).
REQUIRED = re.compile(
    r"Problem with given class_path '(?:[\w.]*\.)?(\w+)':\s*\n\s*the following arguments are required: ([\w, ]+)$",
    re.MULTILINE,
)
UNKNOWN = re.compile(r"Problem with given class_path '(?:[\w.]*\.)?(\w+)':\s*\n\s*Option '([\w.]+)' is not accepted")
# A value given to a linked option (--model.num_classes, set from the data): two ways jsonargparse words it.
LINKED = re.compile(r'argument ([\w.]+) --> ([\w.]+):|Linked "([\w.]+)" must be given via "([\w.]+)"')
WORDS = {"int": "an integer", "float": "a number", "bool": "true/false", "str": "a string", "NoneType": "null"}
PLURALS = {"int": "integers", "float": "numbers", "str": "strings"}
VALUES, CLASSES = "<values>", "<classes>"  # where the Literals' values and the classes go in the list of words


def one_line(message: str) -> str:
    """``message`` as one line naming the option (and the value and what the option takes, for a value of the wrong
    type); unchanged when it is about no single option."""
    linked = LINKED.search(message)
    if linked is not None:
        source, target = linked.group(1) or linked.group(4), linked.group(2) or linked.group(3)
        return f"--{target} is set from {source} (a link): it cannot be given. Leave it out."
    keys, nested, unknown = KEY.findall(message), NESTED.search(message), UNKNOWN.search(message)
    if len(keys) == 1 and nested is not None:
        return f"--{keys[0]}.{nested.group(1)}: {nested.group(2)}"
    if len(keys) == 1 and unknown is not None:
        cls, option = unknown.groups()
        return f"--{keys[0]}.{option}: {cls} has no option {option}; --{keys[0]}.help {cls} lists its options."
    required = REQUIRED.search(message)
    if len(keys) == 1 and required is not None:
        cls, names = required.group(1), [f"--{keys[0]}.{name.strip()}" for name in required.group(2).split(",")]
        return (
            f"--{keys[0]}: {cls} needs {' and '.join(names)}, given after the class on the command line (or in its "
            "init_args in a config file)."
        )
    types = SUBTYPES.search(message) or EXPECTED.search(message)
    unimportable = UNIMPORTABLE.search(message)
    if len(keys) == 1 and unimportable is not None and types is not None:
        path, why = unimportable.groups()
        return (
            f"--{keys[0]}: cannot import {path} ({why}); expected {_either(_split(types.group(1)))}. A class given "
            "by import path must be importable here: installed, or its folder on PYTHONPATH."
        )
    if len(keys) == 1 and types is None and "\n" not in message.strip():  # 'Parser key "config": File does not ...'
        return f"--{keys[0]}: {message.split(':', 1)[1].strip()}"
    if len(keys) != 1 or types is None or "class_path" in message:
        return message
    given = GIVEN.findall(message)
    got = f" got {given[-1].strip()}," if given else ""
    return f"--{keys[0]}:{got} expected {_either(_split(types.group(1)))}."


def _either(hints: list[str]) -> str:
    """What an option of the types ``hints`` takes, in words: ``an integer or null``; every Literal's values as one
    ``one of ...``, every class as one ``a Precision or CheckpointIO class (by name or import path)``."""
    words, values, classes = [], [], []
    for hint in hints:
        name = re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", re.sub(r"<class '([\w.]+)'>", r"\1", hint))  # a.b.Logger -> Logger
        listed = re.fullmatch(r"(?:list|tuple|Iterable|Sequence)\[(.*?)(?:, \.\.\.)?\]", name)
        inner = listed.group(1) if listed else name
        if listed is not None and inner in PLURALS:
            words.append(f"a list of {PLURALS[inner]}")
            continue
        for member in _split(inner[len("Union[") : -1]) if inner.startswith("Union[") else [inner]:
            literal = re.fullmatch(r"Literal\[(.*)\]", member)
            if literal is not None:
                values += [value.strip("'\"") for value in _split(literal.group(1))]
                words.append(VALUES)
            elif re.fullmatch(r"[A-Z]\w*", member) and member != "NoneType":
                classes.append(member)
                words.append(CLASSES)
            else:
                words.append(WORDS.get(member, member))
        if listed is not None:
            words.append("a list of them")
    unique = [word for word in dict.fromkeys(words) if not (word == WORDS["int"] and WORDS["float"] in words)]
    named = {
        VALUES: f"one of {', '.join(dict.fromkeys(values))}",
        CLASSES: f"a {_or(classes)} class (by name or import path)",
    }
    return _or([named.get(word, word) for word in unique])


def _or(items: list[str]) -> str:
    """``a, b or c`` (each once; ``""`` for none)."""
    items = list(dict.fromkeys(items))
    return f"{', '.join(items[:-1])} or {items[-1]}" if len(items) > 1 else "".join(items)


def _split(text: str) -> list[str]:
    """``text`` cut at its top-level commas (not those inside brackets)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    return [*parts, text[start:].strip()]


def did_you_mean(message: str, help_text: str) -> str:
    """For an "unrecognized arguments: ..." message, `` (did you mean --trainer.max_epochs?)`` naming the options of
    ``help_text`` closest to the flags given; ``""`` when none is close."""
    known = set(re.findall(r"(?<![\w-])--[A-Za-z][\w.]*", help_text))
    given = [arg.split("=")[0] for arg in message.partition(":")[2].split() if arg.startswith("--")]
    close = [
        match[0] for match in (difflib.get_close_matches(flag, known, n=1, cutoff=0.75) for flag in given) if match
    ]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_command(command: str | None, commands: tuple[str, ...]) -> ConfigurationError:
    """The error for a command that is none of ``commands`` (or for none given), naming the closest and every one."""
    close = difflib.get_close_matches(command, commands, n=1, cutoff=0.6) if command else []
    guess = f" (did you mean {close[0]}?)" if close else ""
    what = f"Unknown command '{command}'{guess}" if command else "No command given"
    return ConfigurationError(
        f"{what}. The commands are {', '.join(commands)}; `fashion-lightning --help` says what each does."
    )


class OneLineTypeErrors:
    """Mixin for a jsonargparse ``ArgumentParser``: its type errors as ``one_line`` says them, and the options
    closest to a misspelled flag."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            message += did_you_mean(message, self.format_help())  # type: ignore[attr-defined]
        super().error(one_line(message), ex)  # type: ignore[misc]


class FashionArgumentParser(OneLineTypeErrors, LightningArgumentParser):
    """``LightningCLI``'s parser (its ``parser_class``), with one-line type errors and guesses for misspelled flags."""


class ToolArgumentParser(OneLineTypeErrors, ArgumentParser):
    """The parser of ``classify``, ``export`` and ``serve``, with one-line type errors and guesses for misspelled
    flags."""
