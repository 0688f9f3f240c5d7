"""Leoflow's domain errors: one root, flat subclasses that carry the facts a user needs.

The CLI maps them to a stderr message and an exit code (``cli/main.py``); the server maps them to
Airflow-shaped HTTP error bodies (``server/errors.py``). Code below those edges raises them and
never formats terminal or HTTP output itself.
"""

from __future__ import annotations


class LeoflowError(Exception):
    """Root of every error Leoflow raises on purpose.

    ``path`` and ``line`` point at the user's file, ``field`` at the offending key, and ``hint``
    says how to fix it. ``str(err)`` renders all of them in one readable message.
    """

    exit_code: int = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        self.hint = hint

    @property
    def location(self) -> str | None:
        """``file:line`` (or just the file) when the error points into a file."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        parts = []
        if self.location:
            parts.append(f"{self.location}: ")
        if self.field:
            parts.append(f"{self.field}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f"\n  hint: {self.hint}")
        return "".join(parts)


class ProjectError(LeoflowError):
    """leoflow.yaml is missing, malformed or inconsistent with dag.py."""


class CompileError(LeoflowError):
    """dag.py could not be turned into a valid dag.json."""


class SpecError(LeoflowError):
    """A dag.json document violates the spec contract."""


class BuildError(LeoflowError):
    """A venv or image could not be built, pushed or found."""


class NotFound(LeoflowError):
    """A named object (DAG, run, task instance, variable...) does not exist."""

    exit_code = 4


class Conflict(LeoflowError):
    """The object already exists, or changed under us (a lost race)."""

    exit_code = 5


class Unauthorized(LeoflowError):
    """No, expired or forged credentials."""

    exit_code = 3


class Forbidden(LeoflowError):
    """Valid credentials without the right for this action."""

    exit_code = 3


class Unavailable(LeoflowError):
    """A datastore or server cannot be reached right now."""

    exit_code = 6
