"""Dockerfile rendering, the build context and image names (no engine needed)."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from leoflow.builder.dockerfile import (
    context_files,
    dockerignore_text,
    render_dockerfile,
    runtime_image,
    template_path,
    write_dockerfile,
)
from leoflow.builder.image import _push_error, image_reference, registry_of
from leoflow.errors import BuildError
from leoflow.project import LoadedProject, load_project
from leoflow.spec import DagSpec

GOLDEN = Path(__file__).parent / "golden" / "Dockerfile.full.golden"

FULL_YAML = textwrap.dedent(
    """\
    dag_id: etl_daily
    description: Nightly ETL  of the sales data
    owner: data-team
    python_version: "3.12"
    dependencies:
      - pandas==2.2.2
      - requests>=2.31
    system_packages: [libpq5, curl]
    env:
      MODE: "prod"
      QUOTED: 'say "hi" for $5'
    registry:
      image: reg.example/etl
    """
)


def _project(root: Path, yaml_text: str = FULL_YAML) -> LoadedProject:
    root.mkdir(parents=True, exist_ok=True)
    (root / "leoflow.yaml").write_text(yaml_text)
    (root / "dag.py").write_text("print('dag')\n")
    return load_project(root)


def _spec(dag_id: str = "etl_daily", version: str = "2024.06.1") -> DagSpec:
    spec = DagSpec.model_validate(
        {
            "dag_id": dag_id,
            "tasks": [
                {
                    "task_id": "a",
                    "type": "python",
                    "operator": "PythonOperator",
                    "callable": "dag:a",
                }
            ],
        }
    )
    return spec.model_copy(update={"version": version, "content_hash": "ab12" * 16})


def test_rendered_dockerfile_matches_the_golden_file(tmp_path: Path) -> None:
    text = render_dockerfile(_project(tmp_path / "p"), _spec())
    if os.environ.get("LEOFLOW_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_minimal_project_uses_the_runtime_image_and_installs_nothing(tmp_path: Path) -> None:
    text = render_dockerfile(_project(tmp_path / "p", "dag_id: tiny\n"), _spec("tiny"))
    assert "FROM ghcr.io/leoflow/runtime:0.1.0-py3.11\n" in text
    assert "apt-get" not in text and "pip install" not in text
    assert text.index("COPY .leoflow/") < text.index("COPY . /opt/leoflow/dag/")
    assert 'leoflow.version="' + "ab12" * 16 + '"' in text
    assert "USER 1000:1000" in text and 'ENTRYPOINT ["leoflow", "agent"]' in text


def test_base_image_overrides_the_runtime_image(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", "dag_id: tiny\nbase_image: my/base:1\n")
    assert "FROM my/base:1\n" in render_dockerfile(project, _spec("tiny"))
    assert runtime_image("3.12") == "ghcr.io/leoflow/runtime:0.1.0-py3.12"


def test_a_multiline_env_value_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", "dag_id: tiny\nenv:\n  A: |\n    two\n    lines\n")
    with pytest.raises(BuildError, match=r"env\.A"):
        render_dockerfile(project, _spec("tiny"))


def test_template_is_found_in_the_repository() -> None:
    assert template_path("Dockerfile.tmpl").parent.name == "templates"


def test_context_is_include_minus_exclude(tmp_path: Path) -> None:
    root = tmp_path / "p"
    project = _project(root, "dag_id: d\nexclude: [__pycache__, '*.pyc', data/raw, .git]\n")
    for rel in (
        "helpers.py",
        "pkg/mod.py",
        "pkg/__pycache__/mod.cpython-311.pyc",
        "x.pyc",
        "data/raw/big.csv",
        "data/keep.csv",
        ".git/HEAD",
        "Dockerfile.leoflow",
        ".leoflow/requirements.txt",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    files = context_files(project)
    assert files == ["dag.py", "data/keep.csv", "helpers.py", "leoflow.yaml", "pkg/mod.py"]
    ignore = dockerignore_text(files)
    assert ignore.splitlines()[1:4] == ["*", "!dag.py", "!data/keep.csv"]
    assert "!.leoflow/requirements.txt" in ignore


def test_include_narrows_the_context_and_must_exist(tmp_path: Path) -> None:
    root = tmp_path / "p"
    project = _project(root, "dag_id: d\ninclude: [dag.py, lib]\n")
    (root / "lib").mkdir()
    (root / "lib" / "a.py").write_text("")
    (root / "other.py").write_text("")
    assert context_files(project) == ["dag.py", "lib/a.py"]
    broken = _project(tmp_path / "q", "dag_id: d\ninclude: [dag.py, nowhere]\n")
    with pytest.raises(BuildError, match="'nowhere' does not exist") as err:
        context_files(broken)
    assert err.value.line == 2


def test_write_dockerfile_generates_its_inputs(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    path = write_dockerfile(project, _spec())
    assert path == project.root / "Dockerfile.leoflow"
    assert (project.root / ".leoflow" / "requirements.txt").read_text() == (
        "pandas==2.2.2\nrequests>=2.31\n"
    )
    assert "!dag.py" in (project.root / "Dockerfile.leoflow.dockerignore").read_text()


def test_own_dockerfile_from_the_argument_or_the_yaml(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", "dag_id: d\ndockerfile: docker/Dockerfile\n")
    (project.root / "docker").mkdir()
    (project.root / "docker" / "Dockerfile").write_text("FROM x\n")
    assert write_dockerfile(project, _spec("d")) == project.root / "docker" / "Dockerfile"
    other = tmp_path / "Other.Dockerfile"
    other.write_text("FROM y\n")
    assert write_dockerfile(project, _spec("d"), other) == other
    assert not (project.root / "Dockerfile.leoflow").exists()


def test_a_missing_dockerfile_is_named(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", "dag_id: d\n\ndockerfile: build/Nope\n")
    with pytest.raises(BuildError) as err:
        write_dockerfile(project, _spec("d"))
    assert "build/Nope" in str(err.value) and err.value.line == 3
    plain = _project(tmp_path / "q", "dag_id: d\n")
    with pytest.raises(BuildError, match="Dockerfile not found") as err2:
        write_dockerfile(plain, _spec("d"), Path("missing/Dockerfile"))
    assert err2.value.path == "missing/Dockerfile"


@pytest.mark.parametrize(
    ("registry_yaml", "expected"),
    [
        ("  tag_strategy: content_hash\n", "reg.example/etl:" + "ab12" * 3),
        ("  tag_strategy: version\n", "reg.example/etl:2024.06.1"),
        ("  tag_strategy: fixed\n  tag: stable\n", "reg.example/etl:stable"),
    ],
)
def test_image_reference_follows_the_tag_strategy(
    tmp_path: Path, registry_yaml: str, expected: str
) -> None:
    project = _project(
        tmp_path / "p", f"dag_id: d\nregistry:\n  image: reg.example/etl\n{registry_yaml}"
    )
    assert image_reference(project, _spec("d"), None) == expected
    assert image_reference(project, _spec("d"), "other/x:1") == "other/x:1"


def test_image_reference_git_sha(tmp_path: Path) -> None:
    project = _project(
        tmp_path / "p", "dag_id: d\nregistry:\n  image: r/e\n  tag_strategy: git_sha\n"
    )
    with pytest.raises(BuildError, match="git repository"):
        image_reference(project, _spec("d"), None)
    git = ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert image_reference(project, _spec("d"), None) == f"r/e:{sha}"


@pytest.mark.parametrize(
    ("registry_yaml", "message"),
    [
        ("registry:\n  tag_strategy: version\n", "no image name"),
        ("registry:\n  image: r/e:1\n", "without tag or digest"),
        ("registry:\n  image: r/e\n  tag_strategy: fixed\n", "not a valid image tag"),
    ],
)
def test_image_reference_errors(tmp_path: Path, registry_yaml: str, message: str) -> None:
    project = _project(tmp_path / "p", f"dag_id: d\n{registry_yaml}")
    with pytest.raises(BuildError, match=message) as err:
        image_reference(project, _spec("d"), None)
    assert err.value.line is not None and err.value.field.startswith("registry.")


def test_registry_of_and_push_error_wording() -> None:
    assert registry_of("127.0.0.1:5000/a/b:1") == "127.0.0.1:5000"
    assert registry_of("library/python:3") == "docker.io"
    auth = str(_push_error("no basic auth credentials", "reg.example:443/x:1"))
    assert "registry reg.example:443 refused" in auth and "docker login reg.example:443" in auth
    down = str(_push_error('Get "https://r:1/v2/": dial tcp: connection refused', "r:1/x:1"))
    assert "registry r:1 is unreachable" in down
    tls = str(_push_error("x509: certificate signed by unknown authority", "r:1/x:1"))
    assert "/etc/docker/certs.d/r:1/ca.crt" in tls
