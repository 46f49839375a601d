"""Silence C-level chatter (pybullet's banner and URDF warnings, TensorFlow's start-up log).

These libraries write straight to file descriptors 1 and 2 from C/C++, which Python's
``contextlib.redirect_stdout`` cannot catch, so the descriptors themselves are muted.
Python exceptions raised inside still propagate once the descriptors are restored.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def muted_output() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null for the duration of the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in saved:
            os.dup2(devnull, fd)
        yield
    finally:
        # C stdio may still hold buffered text; flush it while the descriptors are muted.
        ctypes.CDLL(None).fflush(None)
        for fd, original in saved.items():
            os.dup2(original, fd)
            os.close(original)
        os.close(devnull)
