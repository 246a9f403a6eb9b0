"""Errors the library raises for bad input. The CLI prints them as one line, no traceback."""

from __future__ import annotations

from pathlib import Path


class AnimesionError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug."""


class DatasetError(AnimesionError, ValueError):
    """A dataset file is missing, malformed, or points somewhere it must not.

    The message always names the file and, where there is one, the row (1-based, as an
    editor shows it), so that a researcher can open the file and fix it.
    """

    def __init__(self, message: str, path: str | Path | None = None, row: int | None = None):
        self.path = Path(path) if path is not None else None
        self.row = row
        where = ""
        if path is not None:
            where = f"{path}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        super().__init__(where + message)


class CheckpointError(AnimesionError, ValueError):
    """A checkpoint does not match the model it is loaded into, or is not a checkpoint."""
