"""``python -m fashion_lightning`` is ``fashion-lightning``."""

from fashion_lightning.cli import cli_main

if __name__ == "__main__":
    cli_main()
