"""charts/leoflow: helm lint, helm template and strict Kubernetes schema validation.

No Kubernetes cluster can run on this machine, so the chart is checked by rendering it with the
real helm binary and validating every manifest against the Kubernetes OpenAPI schemas
(kubernetes-validate --strict), for the default and the hardened values.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REQUIRED = [
    "--set",
    "database.url=postgresql://leoflow:pw@db:5432/leoflow",
    "--set",
    "redis.url=redis://cache:6379/0",
    "--set",
    "bootstrap.password=s3cret",
]


def _template(helm: str, chart: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, "template", "lf", str(chart), "--namespace", "leoflow", *args],
        capture_output=True,
        text=True,
    )


def _docs(text: str) -> dict[tuple[str, str], dict]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _validate(tmp_path: Path, rendered: str) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


def test_lint(helm: str, chart: Path) -> None:
    result = subprocess.run([helm, "lint", str(chart), *REQUIRED], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_default_values_render_valid_manifests(helm: str, chart: Path, tmp_path: Path) -> None:
    result = _template(helm, chart, *REQUIRED)
    assert result.returncode == 0, result.stderr
    _validate(tmp_path, result.stdout)
    docs = _docs(result.stdout)
    deploy = docs[("Deployment", "lf-leoflow")]
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["args"] == ["server"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["LEOFLOW_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "lf-leoflow-datastores"
    )
    assert env["LEOFLOW_EXECUTOR"]["value"] == "kubernetes"
    assert "LEOFLOW_AGENT_TLS_CERT" in env  # agent TLS is on by default
    # A generated CA and server certificate, and the CA for task pods.
    assert docs[("Secret", "lf-leoflow-grpc-tls")]["type"] == "kubernetes.io/tls"
    assert "BEGIN CERTIFICATE" in docs[("ConfigMap", "lf-leoflow-grpc-ca")]["data"]["ca.crt"]
    # Migrations run as a hook, after the datastore secret exists.
    job = docs[("Job", "lf-leoflow-migrate")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    secret = docs[("Secret", "lf-leoflow-datastores")]
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]
    assert ("Ingress", "lf-leoflow") not in docs


def test_rbac_is_limited_to_pods_in_the_task_namespace(helm: str, chart: Path) -> None:
    result = _template(helm, chart, *REQUIRED, "--set", "executor.taskNamespace=tasks")
    assert result.returncode == 0, result.stderr
    docs = _docs(result.stdout)
    role = docs[("Role", "lf-leoflow-executor")]
    assert role["metadata"]["namespace"] == "tasks"
    assert {r for rule in role["rules"] for r in rule["resources"]} == {"pods", "pods/log"}
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    binding = docs[("RoleBinding", "lf-leoflow-executor")]
    assert binding["subjects"][0] == {
        "kind": "ServiceAccount",
        "name": "lf-leoflow",
        "namespace": "leoflow",
    }
    assert docs[("ConfigMap", "lf-leoflow-grpc-ca")]["metadata"]["namespace"] == "tasks"
    assert not any(kind == "ClusterRole" for kind, _ in docs)


def test_hardened_values_render_valid_manifests(helm: str, chart: Path, tmp_path: Path) -> None:
    result = _template(helm, chart, "-f", str(chart / "values-hardened.yaml"))
    assert result.returncode == 0, result.stderr
    _validate(tmp_path, result.stdout)
    docs = _docs(result.stdout)
    pod = docs[("Deployment", "lf-leoflow")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["postgres-ca"]["configMap"]["name"] == "rds-ca"
    assert volumes["grpc-tls"]["secret"]["secretName"] == "leoflow-grpc-tls"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["PGSSLROOTCERT"]["value"].endswith("ca.crt")
    assert env["LEOFLOW_AUTH_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "leoflow-secrets"
    assert docs[("Ingress", "lf-leoflow")]["spec"]["tls"][0]["secretName"] == "leoflow-web-tls"
    # Everything comes from existing secrets: the chart renders none of its own.
    assert not any(kind == "Secret" for kind, _ in docs)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "database.url"),
        (["--set", "database.url=postgresql://x/y"], "redis.url"),
        (
            ["--set", "database.url=postgresql://x/y", "--set", "redis.url=redis://r"],
            "bootstrap.password",
        ),
    ],
)
def test_install_without_external_datastores_is_refused(
    helm: str, chart: Path, args: list[str], needle: str
) -> None:
    result = _template(helm, chart, *args)
    assert result.returncode != 0
    assert needle in result.stderr and "is required" in result.stderr
    if needle != "bootstrap.password":
        assert "Lite-only" in result.stderr
