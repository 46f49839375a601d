"""The ``pipeline`` command line: one thin module per command (parse, validate, call the
algorithm, print); :mod:`pipeline.cli.app` holds the entry point."""

from pipeline.cli.app import app, main

__all__ = ["app", "main"]
