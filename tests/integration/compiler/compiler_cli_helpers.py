"""The real `leoflow` CLI in a subprocess, and where the examples and goldens live."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "leoflow.yaml").is_file())


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m leoflow.cli.main ARGS` as a user would run `leoflow ARGS`."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("LEOFLOW_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "leoflow.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
