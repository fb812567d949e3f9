"""The commands LightningCLI does not run: ``classify``, ``export`` and ``serve`` (on a model file, no Trainer),
``sweep`` (many fits) and ``--version``."""

from fashion_lightning.parse_errors import ToolArgumentParser, unknown_command

TOOLS = ("classify", "export", "serve")
COMMANDS = ("fit", "validate", "test", "predict", *TOOLS, "sweep")


def run_without_lightning_cli(argv) -> int | None:
    """Run ``argv`` if its command is not one of LightningCLI's (fit, validate, test, predict) and return the exit
    status; ``None``: LightningCLI's to run. An unknown or missing command is a ``ConfigurationError`` naming them
    all (Lightning's parser would name its four only)."""
    if not isinstance(argv, list):  # (a dict of arguments: LightningCLI's)
        return None
    command = argv[0] if argv else None
    if command == "--version":
        print(versions_line())
        return 0
    if command is None or (not command.startswith("-") and command not in COMMANDS):
        raise unknown_command(command, COMMANDS)
    if command == "sweep":
        from fashion_lightning.sweep import main as sweep_main

        return sweep_main(argv[1:])
    return min(run_tool(argv), 1) if command in TOOLS else None  # (run_tool returns the failures)


def run_tool(args: list[str]) -> int:
    """``classify``, ``export`` and ``serve``: commands on a model file that need no Trainer. Returns failures."""
    from fashion_lightning.export import export
    from fashion_lightning.inference import classify
    from fashion_lightning.serve import serve

    command, function = args[0], {"classify": classify, "export": export, "serve": serve}[args[0]]
    # The command's own parser, not one above it: a missing argument then shows this command's usage and --help.
    parser = ToolArgumentParser(prog=f"fashion-lightning {command}", description=function.__doc__.split("\n\n")[0])
    if command == "classify":
        parser.add_argument(
            "model_path",
            help="a checkpoint of `fit` (.ckpt) or a file of `export` (.pth with its model.json, .pt2, .onnx)",
        )
        parser.add_argument(
            "images", nargs="+", help="image files (PNG, JPEG, ...; any size or mode), or folders of them"
        )
        parser.add_argument("--top_k", type=int, default=3, help="classes printed per image (all 10 when larger)")
        options = parser.parse_args(args[1:])
        return classify(options.model_path, *options.images, top_k=options.top_k)
    parser.add_function_arguments(function, as_positional=True)
    options = parser.parse_args(args[1:])
    function(**{key: value for key, value in vars(options).items() if key != "config"})
    return 0


def versions_line() -> str:
    """``fashion-lightning --version``: this package's version and those of what it runs on (for bug reports)."""
    import lightning
    import torch

    from fashion_lightning import __version__

    return f"fashion-lightning {__version__} (lightning {lightning.__version__}, torch {torch.__version__})"
