"""The one base class of errors caused by what a user gave us: a missing or malformed file, a bad
config, a corrupt frame, an unknown scenario, a key that does not load.

Each module keeps its own error type (ConfigError, CheckpointError, FrameError, ...) so callers can
catch narrowly; they all derive from InputError as well, so the command line prints any of them as
one line naming the problem and exits non-zero, while a programming error still shows its traceback.
"""
from __future__ import annotations


class InputError(Exception):
    """A problem with the input that the user can fix; its message names the file, flag or value."""


class CommandError(Exception):
    """An error a user can fix (bad path, bad option) found by a command; printed without a traceback."""
