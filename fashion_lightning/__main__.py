"""``python -m fashion_lightning`` is ``fashion-lightning``."""

from fashion_lightning.cli import main

if __name__ == "__main__":
    main()
