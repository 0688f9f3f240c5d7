"""Render a DAG's Dockerfile from ``templates/Dockerfile.tmpl`` and leoflow.yaml.

The image is layered so that a code edit rebuilds one layer: base (the Leoflow runtime image for
the project's Python), apt packages, dependencies (from a generated requirements file copied on
its own), then the project files. Build context = every file under ``include`` minus
``exclude``; :func:`context_files` is the one definition, used both for the tar that
``build_image`` sends and for ``Dockerfile.leoflow.dockerignore`` (for a plain ``docker build``).
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from leoflow import __version__
from leoflow.errors import BuildError
from leoflow.project import LoadedProject
from leoflow.spec import DagSpec

GENERATED_DOCKERFILE = "Dockerfile.leoflow"
BUILD_DIR = ".leoflow"  # generated build inputs inside the project (excluded from code copies)
REQUIREMENTS = f"{BUILD_DIR}/requirements.txt"
CA_BUNDLE = f"{BUILD_DIR}/ca-bundle.crt"
GENERATED_IGNORE = f"{GENERATED_DOCKERFILE}.dockerignore"
RUNTIME_REPOSITORY = "ghcr.io/leoflow/runtime"
_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")


def runtime_image(python_version: str, version: str = __version__) -> str:
    """The Leoflow runtime base image for a Python version, e.g. ghcr.io/leoflow/runtime:0.1.0-py3.11."""
    return f"{RUNTIME_REPOSITORY}:{version}-py{python_version}"


def template_path(name: str) -> Path:
    """A template file: the repository's ``templates/`` first, then the installed copy."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package.parent / "templates", package / "_templates"):
        if (folder / name).is_file():
            return folder / name
    raise BuildError(
        f"template {name} not found (looked in {package.parent / 'templates'} and "
        f"{package / '_templates'})",
        hint="reinstall leoflow: the wheel ships the templates",
    )


def _quote(value: str, what: str) -> str:
    if "\n" in value or "\r" in value:
        raise BuildError(f"{what} must be one line", field=what)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _system_packages(packages: list[str]) -> str:
    if not packages:
        return ""
    names = " \\\n      ".join(sorted(set(packages)))
    return (
        "RUN apt-get update \\\n"
        " && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\\n"
        f"      {names} \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
    )


def _install_dependencies(dependencies: list[str]) -> str:
    if not dependencies:
        return ""
    return (
        "RUN if [ -s /opt/leoflow/build/ca-bundle.crt ]; then \\\n"
        "      export PIP_CERT=/opt/leoflow/build/ca-bundle.crt; fi \\\n"
        " && /opt/leoflow/dag-venv/bin/python -m pip install --no-cache-dir \\\n"
        "      --disable-pip-version-check -r /opt/leoflow/build/requirements.txt\n"
    )


def _env(env: dict[str, str]) -> str:
    if not env:
        return ""
    for key in env:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise BuildError(f"env: {key!r} is not a variable name", field=f"env.{key}")
    pairs = " \\\n    ".join(f"{k}={_quote(v, f'env.{k}')}" for k, v in sorted(env.items()))
    return f"ENV {pairs}\n"


def labels(project: LoadedProject, spec: DagSpec) -> dict[str, str]:
    """The image labels: OCI annotations plus leoflow.dag_id / leoflow.version (content hash)."""
    config = project.config
    out = {
        "org.opencontainers.image.title": spec.dag_id,
        "org.opencontainers.image.version": spec.version,
        "org.opencontainers.image.base.name": base_image(project),
        "leoflow.dag_id": spec.dag_id,
        "leoflow.version": spec.content_hash,
        "leoflow.dag_version": spec.version,
        "leoflow.python_version": config.python_version,
        "leoflow.builder": __version__,
    }
    description = config.description or spec.description
    if description:
        out["org.opencontainers.image.description"] = " ".join(description.split())
    if config.owner:
        out["org.opencontainers.image.authors"] = config.owner
    return out


def base_image(project: LoadedProject) -> str:
    """``base_image`` from leoflow.yaml, else the runtime image for ``python_version``."""
    return project.config.base_image or runtime_image(project.config.python_version)


def render_dockerfile(project: LoadedProject, spec: DagSpec) -> str:
    """The Dockerfile text for this project and compiled spec."""
    config = project.config
    label_lines = " \\\n      ".join(
        f"{k}={_quote(v, k)}" for k, v in labels(project, spec).items()
    )
    values = {
        "leoflow_version": __version__,
        "dag_id": spec.dag_id,
        "config_file": "leoflow.yaml" if project.config_path else "defaults (no leoflow.yaml)",
        "base_image": base_image(project),
        "system_packages": _system_packages(config.system_packages),
        "install_dependencies": _install_dependencies(config.dependencies),
        "env": _env(config.env),
        "labels": f"LABEL {label_lines}",
        "dag_id_quoted": _quote(spec.dag_id, "dag_id"),
        "dag_file_quoted": _quote(config.dag_file, "dag_file"),
    }
    template = template_path("Dockerfile.tmpl").read_text(encoding="utf-8")
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    return re.sub(r"\n{3,}", "\n\n", text)


def requirements_text(project: LoadedProject) -> str:
    """The generated requirements file: one pip specifier per line."""
    deps = project.config.dependencies
    return "".join(f"{d.strip()}\n" for d in deps)


# -- build context -----------------------------------------------------------------------------


def _excluded(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for raw in patterns:
        pattern = raw.strip().rstrip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        if not pattern:
            continue
        if "/" in pattern:  # anchored at the project root, like .dockerignore
            if fnmatch.fnmatch(rel, pattern) or rel.startswith(pattern + "/"):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in parts):  # a name, at any depth
            return True
    return False


def context_files(project: LoadedProject) -> list[str]:
    """Project files for the image: everything under ``include`` minus ``exclude`` (sorted)."""
    root = project.root
    excludes = [*project.config.exclude, BUILD_DIR, GENERATED_DOCKERFILE, GENERATED_IGNORE]
    found: set[str] = set()
    for entry in project.config.include:
        start = (root / entry).resolve()
        if not start.is_relative_to(root):
            raise BuildError(
                f"include entry {entry!r} points outside the project",
                path=str(project.config_path or root),
                line=project.line_of("include"),
                field="include",
                hint="list paths inside the project folder",
            )
        if start.is_file():
            candidates = [start]
        elif start.is_dir():
            candidates = [Path(d) / f for d, _, files in os.walk(start) for f in files]
        else:
            raise BuildError(
                f"include entry {entry!r} does not exist",
                path=str(project.config_path or root),
                line=project.line_of("include"),
                field="include",
            )
        for path in candidates:
            rel = path.relative_to(root).as_posix()
            if not _excluded(rel, excludes) and not path.is_symlink():
                found.add(rel)
    return sorted(found)


def dockerignore_text(files: list[str]) -> str:
    """A .dockerignore admitting exactly ``files`` plus the generated build inputs."""
    lines = [
        "# Generated by leoflow: the build context of Dockerfile.leoflow (include minus exclude).",
        "*",
        *(f"!{f}" for f in files),
        f"!{REQUIREMENTS}",
        f"!{CA_BUNDLE}",
    ]
    return "\n".join(lines) + "\n"


# -- writing -----------------------------------------------------------------------------------


def _own_dockerfile(project: LoadedProject, dockerfile: Path | None) -> Path | None:
    if dockerfile is not None:
        candidates = (
            [Path(dockerfile)]
            if Path(dockerfile).is_absolute()
            else [
                project.root / dockerfile,
                Path.cwd() / dockerfile,
            ]
        )
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
        raise BuildError(
            "Dockerfile not found",
            path=str(dockerfile),
            field="--dockerfile",
            hint=f"give a path to an existing file (relative paths are tried in {project.root} "
            "and the current folder), or leave it out to have leoflow generate one",
        )
    if project.config.dockerfile:
        path = project.root / project.config.dockerfile
        if not path.is_file():
            raise BuildError(
                f"Dockerfile {project.config.dockerfile!r} not found ({path})",
                path=str(project.config_path or project.root),
                line=project.line_of("dockerfile"),
                field="dockerfile",
                hint="fix the path (relative to the project folder) or remove the key to have "
                "leoflow generate one",
            )
        return path.resolve()
    return None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return  # unchanged: keep the mtime, so the layer cache stays warm
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_dockerfile(project: LoadedProject, spec: DagSpec, dockerfile: Path | None = None) -> Path:
    """The Dockerfile to build with: the project's own, else a generated Dockerfile.leoflow."""
    own = _own_dockerfile(project, dockerfile)
    if own is not None:
        return own
    target = project.root / GENERATED_DOCKERFILE
    _write(project.root / REQUIREMENTS, requirements_text(project))
    _write(target, render_dockerfile(project, spec))
    _write(
        project.root / GENERATED_IGNORE,
        dockerignore_text(context_files(project)),
    )
    return target
