"""`leoflow agent`: the worker entrypoint of a task pod (or of the agent executor's process)."""

from __future__ import annotations

import typer


def agent() -> None:
    """Run exactly one task try for the control plane, then exit.

    Configured by the pod's environment: LEOFLOW_AGENT_ADDRESS (host:port of the agent
    service), LEOFLOW_AGENT_TOKEN (this try's token) and optionally LEOFLOW_AGENT_TLS_CA.
    Exit code 0: the task succeeded or was skipped; 1: it failed; 2: the control plane could
    not be reached or refused the agent.
    """
    import sys

    from leoflow.runtime.agent import run_agent

    # SystemExit, not typer.Exit: the root app runs with standalone_mode=False, which would
    # swallow typer.Exit's code, and a pod's exit code is this command's whole answer.
    sys.exit(run_agent())


def register(app: typer.Typer) -> None:
    """Attach `leoflow agent`."""
    app.command("agent")(agent)
