"""``classify``, ``export`` and ``serve``: the commands on a model file that need no Trainer."""

from fashion_lightning.parse_errors import ToolArgumentParser

TOOLS = ("classify", "export", "serve")


def run_tool(args: list[str]) -> int:
    """``classify``, ``export`` and ``serve``: commands on a model file that need no Trainer. Returns failures."""
    from fashion_lightning.export import export
    from fashion_lightning.inference import classify
    from fashion_lightning.serve import serve

    parser = ToolArgumentParser(prog="fashion-lightning")
    subcommands = parser.add_subcommands()
    classify_parser = ToolArgumentParser(description=classify.__doc__.split("\n\n")[0])
    classify_parser.add_argument(
        "model_path", help="a checkpoint of `fit` (.ckpt) or a file of `export` (.pth with its model.json, .pt2, .onnx)"
    )
    classify_parser.add_argument(
        "images", nargs="+", help="image files (PNG, JPEG, ...; any size or mode), or folders of them"
    )
    classify_parser.add_argument("--top_k", type=int, default=3, help="classes printed per image (all 10 when larger)")
    subcommands.add_subcommand("classify", classify_parser)
    export_parser = ToolArgumentParser(description=export.__doc__.split("\n\n")[0])
    export_parser.add_function_arguments(export, as_positional=True)
    subcommands.add_subcommand("export", export_parser)
    serve_parser = ToolArgumentParser(description=serve.__doc__.split("\n\n")[0])
    serve_parser.add_function_arguments(serve, as_positional=True)
    subcommands.add_subcommand("serve", serve_parser)
    config = parser.parse_args(args)
    options = config[config.subcommand]
    if config.subcommand == "classify":
        return classify(options.model_path, *options.images, top_k=options.top_k)
    function = export if config.subcommand == "export" else serve
    function(**{key: value for key, value in vars(options).items() if key != "config"})
    return 0
