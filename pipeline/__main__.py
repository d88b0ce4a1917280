"""`python -m pipeline ...` is the same as the `pixelnet` command (handy under torchrun)."""

from pipeline.cli import app

app()
