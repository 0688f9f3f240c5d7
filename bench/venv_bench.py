"""Per-DAG venv timings: warm reuse (target < 100 ms) and a cold venv with three small packages.

Run: python bench/venv_bench.py [--rounds 200]
Real uv, real PyPI, the interpreters on this machine. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leoflow.builder.venv import ensure_venv

PACKAGES = ["six==1.17.0", "packaging==24.2", "idna==3.10"]


def _timed(fn: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()  # type: ignore[operator]
    return time.perf_counter() - started, result


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--python", default="3.11")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leoflow-venv-bench-") as tmp:
        home = Path(tmp)
        cold, info = _timed(lambda: ensure_venv(home, "bench_dag", args.python, PACKAGES))
        assert not info.reused  # type: ignore[attr-defined]
        print(
            f"cold venv, empty uv cache, 3 packages ({', '.join(PACKAGES)}): {cold * 1000:.0f} ms"
        )
        cold2, _ = _timed(lambda: ensure_venv(home, "bench_dag2", args.python, PACKAGES))
        print(f"cold venv, warm uv cache, same 3 packages (another DAG): {cold2 * 1000:.0f} ms")
        samples = []
        for _ in range(args.rounds):
            took, again = _timed(lambda: ensure_venv(home, "bench_dag", args.python, PACKAGES))
            assert again.reused  # type: ignore[attr-defined]
            samples.append(took * 1000)
        samples.sort()
        p95 = samples[int(len(samples) * 0.95) - 1]
        print(
            f"warm reuse over {args.rounds} calls: median {statistics.median(samples):.2f} ms, "
            f"p95 {p95:.2f} ms, max {samples[-1]:.2f} ms (target < 100 ms)"
        )


if __name__ == "__main__":
    main()
