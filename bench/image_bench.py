"""DAG image rebuild after a dag.py-only change: only the code layer rebuilds.

Run as root: python bench/image_bench.py [--rounds 3]
Starts its own dockerd (no iptables, no bridge, private data root), imports the cached
debootstrapped Debian (tests/integration/builder/builder_engine.py builds it once), builds the
runtime base image, builds the demo DAG image, then edits dag.py and rebuilds, timing each
rebuild and checking that every step before the project COPY was answered by the cache.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration" / "builder"))

from builder_engine import import_base_image, running_dockerd  # noqa: E402
from builder_project import make_project, make_spec  # noqa: E402
from rich.console import Console  # noqa: E402

from leoflow.builder.dockerfile import write_dockerfile  # noqa: E402
from leoflow.builder.image import build_image_result  # noqa: E402
from leoflow.builder.runtime_image import build_runtime_image  # noqa: E402


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-deps",
        action="store_true",
        help="skip the dependency layer (it pip-installs six from PyPI inside the build, "
        "trusting the host CA bundle through LEOFLOW_BUILD_CA_BUNDLE)",
    )
    args = parser.parse_args()
    quiet = Console(file=io.StringIO())
    with running_dockerd() as engine, tempfile.TemporaryDirectory() as tmp:
        os.environ["DOCKER_HOST"] = engine.host
        client = engine.client()
        started = time.perf_counter()
        import_base_image(client, "leoflow-bench/debian:bookworm")
        print(f"import cached Debian rootfs: {time.perf_counter() - started:.1f} s")
        runtime = build_runtime_image(
            "3.11", console=quiet, base_image="leoflow-bench/debian:bookworm"
        )
        print(f"runtime base image build: {runtime.seconds:.1f} s")
        extra = "" if args.no_deps else "dependencies: [six==1.17.0]\n"
        if not args.no_deps:
            os.environ.setdefault(
                "LEOFLOW_BUILD_CA_BUNDLE",
                os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt",
            )
        project = make_project(Path(tmp) / "demo", "bench/demo", extra_yaml=extra)
        spec = make_spec(project)
        first = build_image_result(
            project,
            spec,
            image="bench/demo:0",
            dockerfile=write_dockerfile(project, spec),
            console=quiet,
        )
        print(f"first DAG image build: {first.seconds:.2f} s")
        times = []
        for n in range(1, args.rounds + 1):
            project.dag_path.write_text(project.dag_path.read_text() + f"\n# edit {n}\n")
            spec = make_spec(project)
            result = build_image_result(
                project,
                spec,
                image=f"bench/demo:{n}",
                dockerfile=write_dockerfile(project, spec),
                console=quiet,
            )
            code = next(
                i for i, s in enumerate(result.steps) if s.instruction.startswith("COPY . ")
            )
            before = result.steps[1:code]  # FROM never reports a cache hit
            cached = sum(s.cached for s in before)
            layers = [
                client.images.get(f"bench/demo:{i}").attrs["RootFS"]["Layers"] for i in (n - 1, n)
            ]
            shared = sum(a == b for a, b in zip(*layers, strict=True))
            print(
                f"rebuild {n} after a dag.py edit: {result.seconds:.2f} s; steps before the code "
                f"COPY from cache {cached}/{len(before)}; code COPY cached: "
                f"{result.steps[code].cached}; filesystem layers shared {shared}/{len(layers[1])}"
            )
            times.append(result.seconds)
        print(f"rebuild median: {statistics.median(times):.2f} s over {args.rounds} rounds")
        client.close()


if __name__ == "__main__":
    main()
