"""Cluster mode under the secure-by-default rules, with a real redis-server and real processes:

  - `ragd health` reaches a TLS replica (the image's HEALTHCHECK and the Kubernetes exec
    probes): TLS from --ca-file or $RAGD_CA_FILE, the certificate checked against
    --server-name / $RAGD_TLS_SERVER_NAME (a probe dials 127.0.0.1, the certificate names
    the Service), and it fails on a plain channel or an unverifiable certificate;
  - a replica's /metrics obeys the exposure rules as `ragd serve` does (it is `ragd serve`):
    a token of scope metrics when auth.metrics_token is set, and no start on a non-loopback
    metrics address without one;
  - a worker listens on nothing, whatever server.metrics_listen says (the image sets one):
    its state is in Redis, published by the replicas' /metrics and `ragd cluster status`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from cluster_procs import Redis, Worker
from conftest import REPO

from ragd.security.tls import make_self_signed
from ragd.security.tokens import create_token
from ragd.v1 import ragd_pb2 as pb
from ragd.v1 import ragd_pb2_grpc

SERVICE_NAME = "ragd"  # the Service clients dial; the only name in the replica's certificate


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("redis")
    r = Redis(workdir).start()
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture(scope="module")
def secured_replica(module_daemon, tmp_path_factory, redis):
    """A cluster replica with tokens, TLS (a certificate for SERVICE_NAME only) and a token-guarded /metrics."""
    root = tmp_path_factory.mktemp("secured-replica")
    files = make_self_signed(root / "tls", [SERVICE_NAME])
    tokens_file = root / "tokens"
    tokens = {"metrics": create_token(tokens_file, "scraper", "metrics"),
              "search": create_token(tokens_file, "searcher", "search"),
              "admin": create_token(tokens_file, "operator", "admin")}
    tls = grpc.ssl_channel_credentials(files["ca"].read_bytes())
    d = module_daemon("replica", metrics=True, client_tls=tls, start=False, env={
        "RAGD_CLUSTER_REDIS_URL": redis.url, "RAGD_CLUSTER_REPLICA_NAME": "secured"}, config={
        "auth": {"tokens_file": str(tokens_file), "metrics_token": True},
        "tls": {"cert_file": str(files["server_cert"]), "key_file": str(files["server_key"])}})
    # The test channel dials 127.0.0.1 and checks the certificate against the Service's name.
    d.channel = lambda: grpc.secure_channel(d.address, tls, options=[("grpc.ssl_target_name_override",
                                                                      SERVICE_NAME)])
    d.start()
    return d, tokens, files


def health(address: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    return subprocess.run([sys.executable, "-m", "ragd.cli", "health", "--address", address, "--timeout", "30",
                           *args], capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**environ, **(env or {})})


def test_health_reaches_a_tls_replica_with_the_ca_and_the_service_name(secured_replica):
    d, _, files = secured_replica
    ca = str(files["ca"])
    out = health(d.address, "--ca-file", ca, "--server-name", SERVICE_NAME)
    assert out.returncode == 0 and out.stdout.strip() == "SERVING", out.stderr
    # The same from the environment (the image's HEALTHCHECK takes no flags but the address).
    out = health(d.address, env={"RAGD_CA_FILE": ca, "RAGD_TLS_SERVER_NAME": SERVICE_NAME})
    assert out.returncode == 0 and out.stdout.strip() == "SERVING", out.stderr
    # A plain channel to a TLS port, a certificate not naming what was dialled, another CA: refused.
    out = health(d.address)
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr, out.stderr
    out = health(d.address, "--ca-file", ca)
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr, out.stderr
    other = make_self_signed(Path(files["ca"]).parent / "other", [SERVICE_NAME])
    out = health(d.address, "--ca-file", str(other["ca"]), "--server-name", SERVICE_NAME)
    assert out.returncode == 1 and "UNAVAILABLE" in out.stderr, out.stderr
    out = health(d.address, "--ca-file", str(files["ca"].parent / "missing.pem"))
    assert out.returncode == 2 and "missing.pem" in out.stderr, out.stderr


def test_a_replicas_metrics_need_the_metrics_token(secured_replica):
    d, tokens, _ = secured_replica
    url = f"http://127.0.0.1:{d.metrics_port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=60)
    assert info.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {tokens['search']}"}),
                               timeout=60)
    assert info.value.code == 401
    body = urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {tokens['metrics']}"}),
                                  timeout=60).read().decode()
    assert "ragd_cluster_connected 1.0" in body  # the cluster's metrics, behind the same token


def test_reindex_is_refused_on_a_replica(secured_replica):
    """A local re-embed would leave this replica on a model the workers do not embed with."""
    d, tokens, _ = secured_replica
    admin = (("authorization", f"Bearer {tokens['admin']}"),)
    with d.channel() as ch, pytest.raises(grpc.RpcError) as info:
        ragd_pb2_grpc.RagServiceStub(ch).Reindex(pb.ReindexRequest(collection="default", model="bge-small-en-v1.5"),
                                                 timeout=60, metadata=admin)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "cluster mode" in info.value.details()


def test_a_replica_refuses_a_network_metrics_address_without_a_token(tmp_path, redis):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    out = subprocess.run([sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(tmp_path / "d"),
                          "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=300, cwd=REPO,
                         env={**environ, "RAGD_CLUSTER_REDIS_URL": redis.url,
                              "RAGD_SERVER_METRICS_LISTEN": "0.0.0.0:0"})
    assert out.returncode == 2 and "auth.metrics_token" in out.stderr, out.stderr


def _listening_sockets(pid: int) -> list[str]:
    """The TCP sockets in LISTEN state among a process's open files (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # st == TCP_LISTEN
                found.append(f"{table} {cols[1]}")
    return found


def test_a_worker_listens_on_nothing(tmp_path, models_dir, redis):
    # The image sets server.metrics_listen = 0.0.0.0:9464 for every container, workers included.
    w = Worker(tmp_path / "worker", models_dir, {"RAGD_CLUSTER_REDIS_URL": redis.url,
                                                 "RAGD_SERVER_METRICS_LISTEN": "0.0.0.0:0"})
    try:
        w.start()  # returns once it has logged that it is embedding for the cluster
        assert _listening_sockets(w.proc.pid) == []
        assert w.proc.poll() is None
    finally:
        w.kill()
