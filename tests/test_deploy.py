"""deploy/: the Kubernetes manifests pass kubeconform -strict against schemas generated from
Kubernetes' own OpenAPI, the compose file loads in compose-go (what `docker compose config`
runs), and both checks fail on a misspelt field (so a pass means something). The image build
itself needs podman or docker, which CI does not have: see deploy/README.md for what was run."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def validated():
    out = subprocess.run(["deploy/validate.sh"], cwd=REPO, capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "PYTHON": str(REPO / ".venv/bin/python")})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_manifests_and_compose_file_are_valid(validated):
    m = re.search(r"(\d+) resources found in 1 file - Valid: (\d+), Invalid: (\d+), Errors: (\d+)", validated)
    assert m, validated
    found, valid, invalid, errors = map(int, m.groups())
    assert found >= 12 and valid == found and invalid == errors == 0
    assert "deploy/compose.yaml: valid (5 services)" in validated


def test_the_checks_fail_on_a_misspelt_field(validated, tmp_path):
    schemas = next((REPO / ".tools" / "k8s-schemas").iterdir())
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "deploy/k8s/workers.yaml").read_text().replace("terminationGracePeriodSeconds",
                                                                          "terminationGracePeriodSecond"))
    out = subprocess.run([str(REPO / ".tools/bin/kubeconform"), "-strict", "-schema-location",
                          f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "terminationGracePeriodSecond" in out.stdout, out.stdout
    compose = REPO / "deploy" / f"compose-test-{tmp_path.name}.yaml"
    compose.write_text((REPO / "deploy/compose.yaml").read_text().replace("    healthcheck:", "    healthchek:", 1))
    try:
        out = subprocess.run([str(REPO / ".tools/bin/composecheck"), str(compose)], capture_output=True, text=True)
    finally:
        compose.unlink()
    assert out.returncode != 0 and "healthchek" in out.stderr, out.stderr


def test_dockerfile_copies_what_exists_and_runs_as_non_root():
    text = (REPO / "deploy/Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
    assert re.search(r"^USER 10001", text, flags=re.M)
    assert "ragd model export" in text  # the model is provisioned at build time
    assert re.search(r'^HEALTHCHECK .*\n?.*"ragd", "health"', text, flags=re.M)


def test_replica_probes_run_ragd_health_over_tls_with_the_mounted_ca():
    """Kubernetes' grpc probes speak no TLS and the replicas serve TLS: every probe is an exec of
    `ragd health` with the CA from the mounted TLS Secret (tests/test_cluster_security.py runs
    that command against a TLS replica)."""
    import yaml
    docs = list(yaml.safe_load_all((REPO / "deploy/k8s/replicas.yaml").read_text()))
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["RAGD_TLS_CERT_FILE"] and env["RAGD_TLS_KEY_FILE"]  # the replica serves TLS
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    tls_secret = next(v["secret"]["secretName"] for v in pod["volumes"] if v["name"] == "tls")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c[probe]
        assert "grpc" not in p and p["exec"]["command"][:2] == ["ragd", "health"], probe
        cmd = p["exec"]["command"]
        ca = cmd[cmd.index("--ca-file") + 1]
        assert ca == f"{mounts['tls']}/ca.crt", probe
        assert cmd[cmd.index("--server-name") + 1] == "ragd"  # the Service clients dial
        assert p["timeoutSeconds"] > int(cmd[cmd.index("--timeout") + 1]), probe
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "deploy/k8s/secrets.yaml").read_text())}
    assert "ca.crt" in secrets[tls_secret]["data"]
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert "ragd" in services
