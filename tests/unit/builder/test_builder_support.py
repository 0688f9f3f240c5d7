"""Venv keys, interpreter lookup, the slim runtime copy and engine discovery (no uv, no engine)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from rich.console import Console

from leoflow.builder import venv as venv_mod
from leoflow.builder.engine import connect, context_tar, engine_host
from leoflow.builder.image import build_image
from leoflow.builder.runtime_files import copy_runtime, runtime_digest, runtime_files
from leoflow.builder.venv import find_interpreter, uv_env, venv_key
from leoflow.errors import BuildError
from leoflow.project import load_project
from leoflow.spec import DagSpec


def test_venv_key_ignores_order_and_spacing_but_not_content() -> None:
    a = venv_key("3.11", ["six==1.16.0", "packaging==24.0"])
    assert a == venv_key("3.11", ["packaging==24.0", " six==1.16.0 "])
    assert a != venv_key("3.12", ["six==1.16.0", "packaging==24.0"])
    assert a != venv_key("3.11", ["six==1.17.0", "packaging==24.0"])


def test_unknown_interpreter_lists_what_the_machine_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        venv_mod, "find_interpreters", lambda: {"3.9": Path("/p/3.9"), "3.10": Path("/p/3.10")}
    )
    with pytest.raises(BuildError) as err:
        find_interpreter("3.42")
    text = str(err.value)
    assert "no Python 3.42 interpreter" in text
    assert text.index("3.9 (/p/3.9)") < text.index("3.10 (/p/3.10)")
    assert err.value.field == "python_version"


def test_uv_env_shares_one_cache_and_never_downloads_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    env = uv_env(tmp_path)
    assert env["UV_CACHE_DIR"] == str(tmp_path / "uv-cache")
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env.get("SSL_CERT_FILE") or env.get("UV_SYSTEM_CERTS") == "1"


def test_the_slim_runtime_holds_only_stdlib_parts(tmp_path: Path) -> None:
    names = [rel for rel, _ in runtime_files()]
    assert "__init__.py" in names
    assert all(
        n.split("/")[0] in {"__init__.py", "sdk", "runtime", "compat", "compiler"} for n in names
    )
    assert not any(n.endswith(".pyc") for n in names)
    copy_runtime(tmp_path)
    stub = (tmp_path / "leoflow" / "compiler" / "__init__.py").read_text()
    assert "Stub" in stub
    assert not (tmp_path / "leoflow" / "spec.py").exists()
    assert len(runtime_digest()) == 64


def test_context_tar_is_reproducible_and_keeps_exec_bits(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    first = context_tar([("run.sh", script), ("a.txt", b"hello")]).read()
    assert first == context_tar([("run.sh", script), ("a.txt", b"hello")]).read()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.getmember("run.sh").mode == 0o755
        assert tar.getmember("a.txt").mtime == 0


def test_docker_host_wins_over_default_sockets() -> None:
    assert engine_host({"DOCKER_HOST": "tcp://10.0.0.1:2375"}) == (
        "tcp://10.0.0.1:2375",
        "DOCKER_HOST=tcp://10.0.0.1:2375",
    )


def test_no_engine_reachable_names_the_host_and_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"unix://{tmp_path}/dead.sock"
    monkeypatch.setenv("DOCKER_HOST", dead)
    with pytest.raises(BuildError) as err:
        connect()
    text = str(err.value)
    assert f"DOCKER_HOST={dead}" in text
    assert "dockerd --iptables=false --bridge=none" in text and "podman system service" in text
    # build_image reports the same before sending anything
    root = tmp_path / "p"
    root.mkdir()
    (root / "dag.py").write_text("")
    (root / "Dockerfile").write_text("FROM x\n")
    spec = DagSpec.model_validate(
        {
            "dag_id": "d",
            "tasks": [
                {"task_id": "a", "type": "bash", "operator": "BashOperator", "bash_command": "true"}
            ],
        }
    )
    with pytest.raises(BuildError, match="no container engine reachable"):
        build_image(
            load_project(root),
            spec,
            image="x/y:1",
            dockerfile=root / "Dockerfile",
            console=Console(file=io.StringIO()),
        )
