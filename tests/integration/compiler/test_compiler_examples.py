"""Every example compiles byte-for-byte to its golden dag.json, deterministically.

Regenerate the goldens after an intended change with:

    LEOFLOW_UPDATE_GOLDENS=1 python -m pytest tests/integration/compiler/test_compiler_examples.py
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from compiler_cli_helpers import EXAMPLE_NAMES, GOLDEN, run_cli

from leoflow.spec import dumps, loads

UPDATE = os.environ.get("LEOFLOW_UPDATE_GOLDENS") == "1"


def test_every_example_has_a_golden():
    assert set(EXAMPLE_NAMES) >= {"hello", "etl", "ml_hparam_search", "branching", "yaml_pipeline"}
    if not UPDATE:
        assert sorted(p.name.removesuffix(".dag.json") for p in GOLDEN.glob("*.dag.json")) == (
            EXAMPLE_NAMES
        )


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_matches_golden(name, cli, example_copy, tmp_path):
    root = example_copy(name)
    out = tmp_path / f"{name}.dag.json"
    result = cli("compile", str(root), "-o", str(out), "--dag-version", "golden")
    assert result.returncode == 0, result.stderr
    assert f"Compiled {name}:" in result.stdout
    text = out.read_text(encoding="utf-8")
    golden = GOLDEN / f"{name}.dag.json"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert golden.read_text(encoding="utf-8") == text, (
        f"{name} drifted from its golden; if intended: LEOFLOW_UPDATE_GOLDENS=1 pytest {__file__}"
    )
    spec = loads(text)  # validates the schema and the content_hash
    assert spec.dag_id == name and spec.version == "golden"
    assert dumps(spec) == text  # lossless round trip


def test_compile_is_deterministic(cli, example_copy, tmp_path):
    """Two processes (different hash seeds), two folders: the same bytes and content_hash."""
    root = example_copy("ml_hparam_search")
    elsewhere = tmp_path / "elsewhere" / "nested"
    shutil.copytree(root, elsewhere)
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    assert cli("compile", str(root), "-o", str(first)).returncode == 0
    assert cli("compile", str(elsewhere), "-o", str(second)).returncode == 0
    assert first.read_bytes() == second.read_bytes()
    one, two = json.loads(first.read_text()), json.loads(second.read_text())
    assert one["content_hash"] == two["content_hash"]
    assert one["version"] == "h" + one["content_hash"][:12]


def test_compile_defaults_to_current_folder(example_copy):
    root = example_copy("hello")
    result = run_cli("compile", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "Compiled hello: 3 task(s)" in result.stdout
    assert (root / "dag.json").is_file()
    assert (root / "Dockerfile.leoflow").is_file()
    assert loads((root / "dag.json").read_text()).source_file == "dag.py"


def test_validate_examples_write_nothing(cli, example_copy):
    for name in ("hello", "yaml_pipeline"):
        root = example_copy(name)
        before = sorted(p.name for p in root.iterdir())
        result = cli("validate", str(root))
        assert result.returncode == 0, result.stderr
        assert f"OK {name}:" in result.stdout
        assert sorted(p.name for p in root.iterdir()) == before
