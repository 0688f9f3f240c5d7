"""``python -m leoflow.runtime COMMAND``: the stdlib-only entry point of a DAG image.

``run JOB_JSON`` runs one task try (the runner). ``agent`` needs the full leoflow wheel (gRPC):
release runtime images install it in their own venv and their ``leoflow`` launcher prefers it.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``run`` to the runner; explain what is missing for anything else."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        from leoflow.runtime.runner import main as run

        return run(argv[1:])
    if argv[:1] == ["agent"]:
        try:
            from leoflow.runtime.agent import main as agent
        except ImportError as exc:
            print(
                f"leoflow agent is not available in this image ({exc}); build the runtime image "
                "with the leoflow wheel (leoflow.builder.runtime_image) so it has the agent",
                file=sys.stderr,
            )
            return 2
        return agent()
    print("usage: python -m leoflow.runtime run JOB_JSON | agent", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
