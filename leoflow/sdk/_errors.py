"""Authoring errors raised while a dag.py runs, pointing at the user's file and line.

The SDK must import nothing of ours (it runs inside every DAG's venv), so this error mirrors
``leoflow.errors.LeoflowError``'s fields instead of subclassing it; the compiler converts it.
"""

from __future__ import annotations

import os
import sys

_SDK_DIR = os.path.dirname(os.path.abspath(__file__))
_COMPAT_DIR = os.path.join(os.path.dirname(_SDK_DIR), "compat")
# Both spellings: the package may be reached through a symlink (the probe's isolated path).
_INTERNAL_PREFIXES = tuple(
    {os.path.join(d, "") for d in (_SDK_DIR, _COMPAT_DIR)}
    | {os.path.join(os.path.realpath(d), "") for d in (_SDK_DIR, _COMPAT_DIR)}
)


class AuthoringError(Exception):
    """A dag.py uses the authoring API wrongly; ``path``/``line`` point at the offending call."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint

    @property
    def location(self) -> str | None:
        """``file:line`` (or just the file) when known."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class UnsupportedFeatureError(AuthoringError):
    """An Airflow feature Leoflow does not support (yet)."""


def _is_internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_INTERNAL_PREFIXES) or filename.startswith(
        "<frozen"
    )


# The dag file load_dags is importing (innermost last): declarations report its lines.
LOADING_FILES: list[str] = []


def caller_location(in_dag_file: bool = False) -> tuple[str | None, int | None]:
    """The file and line of the innermost stack frame outside the SDK (the user's code).

    With ``in_dag_file``, prefer the innermost frame in the dag file being loaded, so a task
    made by a helper module's factory function reports the dag.py line that called it.
    """
    frame = sys._getframe(1)
    found: tuple[str | None, int | None] = (None, None)
    while frame is not None:
        name = frame.f_code.co_filename
        if found[0] is None and not _is_internal(name):
            found = (name, frame.f_lineno)
            if not (in_dag_file and LOADING_FILES) or name == LOADING_FILES[-1]:
                return found
        elif found[0] is not None and name == LOADING_FILES[-1]:
            return name, frame.f_lineno
        frame = frame.f_back
    return found


def fail(message: str, *, hint: str | None = None, cls: type = AuthoringError) -> AuthoringError:
    """An AuthoringError located at the caller's line in user code (raise it)."""
    path, line = caller_location()
    return cls(message, path=path, line=line, hint=hint)


def unsupported(feature: str, hint: str | None = None) -> UnsupportedFeatureError:
    """An error for an Airflow feature that is not supported yet, at the user's line."""
    path, line = caller_location()
    return UnsupportedFeatureError(
        f"{feature} is not supported yet", path=path, line=line, hint=hint
    )
