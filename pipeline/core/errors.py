"""User-facing errors of the pipeline: the CLI prints their message as one line, exit 2."""


class PipelineError(Exception):
    """A bad option, a missing file or another input problem the user can fix."""
