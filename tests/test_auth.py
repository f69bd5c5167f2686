"""Authentication, scopes, TLS/mTLS with rotation, the secure-by-default bind,
confined snapshots, the audit log and per-token rate limits, against real daemons.

One daemon serves auth + TLS for most tests (module scope); mutual TLS with
rotation and the rate limit get their own.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from conftest import REPO
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ragd.api.auth import SCOPES, UNAUTHENTICATED
from ragd.security.tls import make_self_signed
from ragd.security.tokens import create_token, revoke_token
from ragd_client import PermissionDenied, RagClient, ResourceExhausted, Unauthenticated
from ragd_client.v1 import ragd_pb2 as pb
from ragd_client.v1 import ragd_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["RagService"]
ROLES = {"searcher": "search", "writer": "write", "admin": "admin", "everything": "search,write,admin"}


def _creds(files, client: str | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        files["ca"].read_bytes(),
        private_key=files[f"{client}_key"].read_bytes() if client else None,
        certificate_chain=files[f"{client}_cert"].read_bytes() if client else None)


@pytest.fixture(scope="module")
def secured(module_daemon, tmp_path_factory):
    """A daemon with tokens and TLS; returns (daemon, tokens by role, TLS files)."""
    root = tmp_path_factory.mktemp("secured")
    files = make_self_signed(root / "tls", ["localhost", "127.0.0.1"])
    tokens_file = root / "tokens"
    tokens = {role: create_token(tokens_file, role, scopes) for role, scopes in ROLES.items()}
    tokens["metrics"] = create_token(tokens_file, "scraper", "metrics")
    d = module_daemon("secured", metrics=True, client_tls=_creds(files), config={
        "auth": {"tokens_file": str(tokens_file), "metrics_token": True},
        "tls": {"cert_file": str(files["server_cert"]), "key_file": str(files["server_key"])},
        "server": {"backup_dir": str(root / "backups")}})
    return d, tokens, files, tokens_file


def _call(channel, method, token: str | None, timeout: float = 60):
    """Call `method` with an empty request (one message on a stream); the status code."""
    stub = getattr(ragd_pb2_grpc.RagServiceStub(channel), method.name)
    request = getattr(pb, method.input_type.name)()
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    arg = iter([request]) if method.client_streaming else request
    try:
        result = stub(arg, timeout=timeout, metadata=metadata)
        if method.server_streaming:
            for _ in result:
                pass
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


def test_every_rpc_has_a_scope():
    assert {m.name for m in SERVICE.methods} <= set(SCOPES), "an RPC without a scope needs admin: decide"


def test_every_rpc_is_allowed_and_refused_by_scope(secured):
    d, tokens, files, _ = secured
    with grpc.secure_channel(d.address, _creds(files)) as ch:
        for method in SERVICE.methods:
            needed = SCOPES[method.name]
            for role, scopes in ROLES.items():
                code = _call(ch, method, tokens[role])
                if needed in scopes.split(","):
                    assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), \
                        (method.name, role, code)
                else:
                    assert code == grpc.StatusCode.PERMISSION_DENIED, (method.name, role, code)
            for token in (None, "", "ragd_not-a-token", tokens["admin"] + "x", "x" * 5000):
                assert _call(ch, method, token) == grpc.StatusCode.UNAUTHENTICATED, (method.name, token)


def test_refusals_reveal_nothing_and_health_is_open(secured):
    d, tokens, files, _ = secured
    with grpc.secure_channel(d.address, _creds(files)) as ch:
        stub = ragd_pb2_grpc.RagServiceStub(ch)
        messages = set()
        for token in (None, "ragd_unknown", tokens["searcher"][:-1]):
            md = (("authorization", f"Bearer {token}"),) if token else None
            with pytest.raises(grpc.RpcError) as info:
                stub.Stats(pb.StatsRequest(), timeout=60, metadata=md)
            messages.add(info.value.details())
        assert messages == {UNAUTHENTICATED}
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="ragd.v1.RagService"),
                                                      timeout=60)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_oversized_metadata_is_refused_by_grpc(secured):
    d, tokens, files, _ = secured
    with grpc.secure_channel(d.address, _creds(files)) as ch:
        stub = ragd_pb2_grpc.RagServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.Stats(pb.StatsRequest(), timeout=60, metadata=(("authorization", f"Bearer {tokens['searcher']}"),
                                                                ("x-padding", "p" * 40_000)))
        assert info.value.code() != grpc.StatusCode.OK
        stub.Stats(pb.StatsRequest(), timeout=60, metadata=(("authorization", f"Bearer {tokens['searcher']}"),))
    assert d.proc.poll() is None


def test_reflection_needs_a_token_by_default(secured):
    d, tokens, files, _ = secured
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    with grpc.secure_channel(d.address, _creds(files)) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ServerReflectionInfo(iter([req]), timeout=60))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answers = list(stub.ServerReflectionInfo(iter([req]), timeout=60,
                                                 metadata=(("authorization", f"Bearer {tokens['searcher']}"),)))
        names = {s.name for s in answers[0].list_services_response.service}
        assert "ragd.v1.RagService" in names


def test_the_python_client_takes_token_and_ca_from_arguments_or_environment(secured, monkeypatch):
    d, tokens, files, _ = secured
    with RagClient(d.address, token=tokens["everything"], ca_file=str(files["ca"]), timeout=60) as c:
        c.upsert([{"id": "doc:1", "text": "the build server ran out of disk space"}])
        assert c.search("disk space", top_k=1).hits[0].document_id == "doc:1"
    monkeypatch.setenv("RAGD_TOKEN", tokens["searcher"])
    monkeypatch.setenv("RAGD_CA_FILE", str(files["ca"]))
    with RagClient(d.address, timeout=60) as c:
        assert c.stats().collections
        with pytest.raises(PermissionDenied):
            c.delete(["doc:1"])
    monkeypatch.delenv("RAGD_TOKEN")
    with RagClient(d.address, timeout=60) as c, pytest.raises(Unauthenticated):
        c.stats()
    monkeypatch.delenv("RAGD_CA_FILE")
    with RagClient(d.address, token=tokens["searcher"], timeout=5) as c, pytest.raises(Exception):  # noqa: B017
        c.stats()  # plaintext to a TLS port: no answer

    import asyncio

    from ragd_client import AsyncRagClient

    async def run():
        async with AsyncRagClient(d.address, token=tokens["searcher"], ca_file=str(files["ca"]), timeout=60) as ac:
            tagged = [r async for r in ac.search_stream([("a", "disk")], top_k=1)]
            return (await ac.search("disk", top_k=1)).hits[0].document_id, tagged[0][1].hits[0].document_id
    assert asyncio.run(run()) == ("doc:1", "doc:1")


RUBY_SCRIPT = """
require "ragd/client"
ok = Ragd::Client.new(timeout: 60)  # address, token and CA file from RAGD_* variables
ok.upsert([{ id: "ruby:1", text: "the mail server rejects attachments over ten megabytes" }])
puts "hit=#{ok.search("mail attachment size", top_k: 1).hits.first.document_id}"
begin
  Ragd::Client.new(timeout: 60, token: "ragd_wrong").stats
rescue Ragd::Unauthenticated => e
  puts "unauthenticated=#{e.code}"
end
begin
  Ragd::Client.new(timeout: 60, token: ENV.fetch("SEARCH_ONLY")).delete(["ruby:1"])
rescue Ragd::PermissionDenied => e
  puts "denied=#{e.code}"
end
"""


def test_the_ruby_gem_takes_token_and_ca_file(secured):
    d, tokens, files, _ = secured
    env = {**os.environ, "RAGD_ADDRESS": d.address, "RAGD_TOKEN": tokens["everything"],
           "RAGD_CA_FILE": str(files["ca"]), "SEARCH_ONLY": tokens["searcher"]}
    out = subprocess.run(["ruby", "-Iclients/ruby/lib", "-e", RUBY_SCRIPT], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split() == ["hit=ruby:1", "unauthenticated=16", "denied=7"], out.stdout + out.stderr


def test_a_certificate_from_another_ca_is_refused(secured, tmp_path):
    d, tokens, _, _ = secured
    other = make_self_signed(tmp_path / "other", ["localhost", "127.0.0.1"])
    with RagClient(d.address, token=tokens["searcher"], ca_file=str(other["ca"]), timeout=5) as c, \
            pytest.raises(Exception) as info:  # noqa: B017
        c.stats()
    assert "UNAVAILABLE" in str(info.value)


def test_tokens_are_stored_hashed_and_revoked_without_restart(secured):
    d, tokens, files, tokens_file = secured
    text = tokens_file.read_text()
    assert not any(t in text for t in tokens.values()) and oct(tokens_file.stat().st_mode & 0o777) == "0o600"
    fresh = create_token(tokens_file, "temporary", "search")
    with RagClient(d.address, token=fresh, ca_file=str(files["ca"]), timeout=60) as c:
        _until(lambda: _ok(c.stats), "the new token accepted")
        revoke_token(tokens_file, "temporary")
        _until(lambda: _refused(c.stats, Unauthenticated), "the revoked token refused")
    log = d.log()
    assert "auth failure UNAUTHENTICATED" in log and "token=-" in log
    assert not any(t in log for t in [*tokens.values(), fresh])


def test_admin_calls_and_failures_are_audited_with_name_and_peer(secured):
    d, tokens, files, _ = secured
    with RagClient(d.address, token=tokens["writer"], ca_file=str(files["ca"]), timeout=60) as c, \
            pytest.raises(PermissionDenied):
        c.snapshot("by-writer")
    with RagClient(d.address, token=tokens["admin"], ca_file=str(files["ca"]), timeout=120) as c:
        c.snapshot("audited")
    log = d.log()
    assert re.search(r"auth failure PERMISSION_DENIED: /ragd.v1.RagService/Snapshot token=writer "
                     r"peer=ipv4:127\.0\.0\.1:\d+", log), log[-3000:]
    assert re.search(r"admin call /ragd.v1.RagService/Snapshot token=admin peer=ipv4:127\.0\.0\.1:\d+", log)


def test_snapshot_writes_only_under_the_backup_dir_by_name(secured, tmp_path):
    d, tokens, files, tokens_file = secured
    backups = tokens_file.parent / "backups"
    outside = tmp_path / "outside"
    with RagClient(d.address, token=tokens["admin"], ca_file=str(files["ca"]), timeout=120) as c:
        path, seq, size = c.snapshot("nightly-1")
        assert path == str((backups / "nightly-1").resolve()) and (backups / "nightly-1").is_dir() and size > 0
        backups.mkdir(exist_ok=True)
        (backups / "planted").symlink_to(outside)
        for name in ("../escape", "/tmp/abs", str(outside), "a/b", "..", ".", "", "planted", "nightly-1",
                     "x" * 200, "bad\nname"):
            with pytest.raises(Exception) as info:  # noqa: B017
                c.snapshot(name)
            assert "INVALID_ARGUMENT" in str(info.value), (name, info.value)
    assert not outside.exists()
    assert not (backups.parent / "escape").exists() and not os.path.exists("/tmp/abs")


def test_metrics_need_a_token_when_configured(secured):
    d, tokens, _, _ = secured
    url = f"http://127.0.0.1:{d.metrics_port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url, timeout=60)
    assert info.value.code == 401
    for token, ok in ((tokens["searcher"], False), (tokens["metrics"], True), (tokens["admin"], True)):
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        if ok:
            body = urllib.request.urlopen(req, timeout=60).read().decode()
            assert 'code="UNAUTHENTICATED"' in body
        else:
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=60)


# ---------------------------------------------------------------- mutual TLS and rotation

def test_mutual_tls_and_rotation_without_restart(daemon, tmp_path):
    first = make_self_signed(tmp_path / "first", ["localhost", "127.0.0.1"], clients=["redmine"])
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server_cert", "server_key"):
        shutil.copy(first[name], live / first[name].name)
    ca_bundle = live / "clients-ca.pem"
    shutil.copy(first["ca"], ca_bundle)
    d = daemon(client_tls=_creds(first, "redmine"), config={"tls": {
        "cert_file": str(live / "server.pem"), "key_file": str(live / "server.key"),
        "client_ca_file": str(ca_bundle)}})
    args = dict(ca_file=str(first["ca"]), timeout=30)
    with RagClient(d.address, cert_file=str(first["redmine_cert"]), key_file=str(first["redmine_key"]),
                   **args) as c:
        assert c.stats() is not None
    with RagClient(d.address, **args) as c, pytest.raises(Exception):  # noqa: B017 - no client certificate
        c.stats()
    stranger = make_self_signed(tmp_path / "stranger", ["localhost"], clients=["mallory"])
    with RagClient(d.address, cert_file=str(stranger["mallory_cert"]), key_file=str(stranger["mallory_key"]),
                   **args) as c, pytest.raises(Exception):  # noqa: B017 - a certificate from another CA
        c.stats()

    # Rotate to a new CA's server certificate (and accept the new CA's clients): new
    # connections get the new certificate without a restart; the process stays the same.
    second = make_self_signed(tmp_path / "second", ["localhost", "127.0.0.1"], clients=["redmine"])
    pid = d.proc.pid
    # A half-done rotation (new certificate, old key) is refused and the old pair stays in use.
    shutil.copy(second["server_cert"], live / "server.pem")
    with RagClient(d.address, cert_file=str(first["redmine_cert"]), key_file=str(first["redmine_key"]),
                   **args) as c:
        _until(lambda: _ok(c.stats), "the old pair still served")
    assert "keeping the current certificate" in d.log()
    shutil.copy(second["server_key"], live / "server.key")
    ca_bundle.write_bytes(first["ca"].read_bytes() + second["ca"].read_bytes())
    new_args = dict(ca_file=str(second["ca"]), cert_file=str(second["redmine_cert"]),
                    key_file=str(second["redmine_key"]), timeout=30)
    with RagClient(d.address, **new_args) as c:
        _until(lambda: _ok(c.stats), "the rotated certificate served")
    with RagClient(d.address, cert_file=str(first["redmine_cert"]), key_file=str(first["redmine_key"]),
                   **args) as c, pytest.raises(Exception):  # noqa: B017 - the old CA no longer verifies it
        c.stats()
    # SIGHUP reloads too (here: the same files, so nothing changes but the log).
    os.kill(d.proc.pid, signal.SIGHUP)
    _until(lambda: "SIGHUP: reloading certificates" in d.log(), "the SIGHUP logged")
    with RagClient(d.address, **new_args) as c:
        assert c.stats() is not None
    assert d.proc.pid == pid and d.proc.poll() is None


# ---------------------------------------------------------------- rate limits

def test_rate_limit_per_token_with_a_retry_hint(daemon, tmp_path):
    tokens_file = tmp_path / "tokens"
    busy, calm = create_token(tokens_file, "busy", "search"), create_token(tokens_file, "calm", "search")
    d = daemon(config={"auth": {"tokens_file": str(tokens_file), "rate_per_s": 0.2, "rate_burst": 3}})
    with RagClient(d.address, token=busy, timeout=60) as c:
        for _ in range(3):
            c.stats()
        with pytest.raises(ResourceExhausted) as info:
            c.stats()
        assert 0 < info.value.retry_after_s <= 5.0 and "rate limit" in info.value.message
    with RagClient(d.address, token=calm, timeout=60) as c:
        c.stats()  # another token's bucket is its own


# ---------------------------------------------------------------- connection limits

def test_streams_over_the_per_connection_cap_wait_for_a_free_one(daemon):
    """server.max_concurrent_streams: with one stream allowed per connection, a call on the
    same channel cannot start while a stream is open, and goes through once it closes."""
    import queue
    d = daemon(config={"server": {"max_concurrent_streams": 1, "stream_depth": 1}})  # depth 1: answers at once
    with grpc.insecure_channel(d.address) as ch:
        stub = ragd_pb2_grpc.RagServiceStub(ch)
        stub.Stats(pb.StatsRequest(), timeout=60)  # the connection is up
        held: queue.Queue = queue.Queue()

        def requests():
            yield pb.SearchStreamRequest(tag="q", request=pb.SearchRequest(query="backup", top_k=1))
            held.get()  # keep the stream open until the test lets it end

        answers = stub.SearchStream(requests(), timeout=300)
        next(answers)  # the stream is open: its first answer came back
        with pytest.raises(grpc.RpcError) as info:
            stub.Stats(pb.StatsRequest(), timeout=2)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        held.put(None)
        assert list(answers) == []
        stub.Stats(pb.StatsRequest(), timeout=60)  # the slot is free again
    assert d.proc.poll() is None


# ---------------------------------------------------------------- secure by default

def _serve(tmp_path, *args, env=None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    return subprocess.run([sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(tmp_path / "d"), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env={**environ, **(env or {})})


def test_a_network_bind_without_auth_and_tls_refuses_to_start(tmp_path):
    out = _serve(tmp_path, "--listen", "0.0.0.0:0")
    assert out.returncode == 2
    assert "auth.tokens_file and tls.cert_file and tls.key_file are not set" in out.stderr
    assert "server.insecure" in out.stderr
    tokens_file = tmp_path / "tokens"
    create_token(tokens_file, "x", "search")
    out = _serve(tmp_path, "--listen", "0.0.0.0:0", env={"RAGD_AUTH_TOKENS_FILE": str(tokens_file)})
    assert out.returncode == 2 and "tls.cert_file and tls.key_file is not set" in out.stderr
    out = _serve(tmp_path, "--listen", "127.0.0.1:0", env={"RAGD_SERVER_METRICS_LISTEN": "0.0.0.0:0"})
    assert out.returncode == 2 and "auth.metrics_token" in out.stderr


def test_insecure_is_logged_loudly(tmp_path, models_dir):
    data = tmp_path / "d"
    data.mkdir()
    (data / "models").symlink_to(models_dir, target_is_directory=True)
    log_path = tmp_path / "log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ragd.cli", "serve", "--data-dir", str(data),
                                 "--listen", "0.0.0.0:0"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**environ, "RAGD_SERVER_INSECURE": "true", "RAGD_SERVER_METRICS_LISTEN": ""})
    try:
        _until(lambda: "listening on 0.0.0.0:" in log_path.read_text() or proc.poll() is not None,
               "the daemon listening", timeout=300)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
    text = log_path.read_text()
    assert "listening on 0.0.0.0:" in text, text
    assert re.search(r"WARNING ragd.security: INSECURE \(server.insecure = true\): server.listen = '0.0.0.0:0' "
                     r"is not a loopback address", text), text


def test_bad_tokens_or_tls_files_refuse_to_start(tmp_path):
    (tmp_path / "tokens").write_text("admin search not-a-hash\n")
    out = _serve(tmp_path, "--listen", "127.0.0.1:0", env={"RAGD_AUTH_TOKENS_FILE": str(tmp_path / "tokens")})
    assert out.returncode == 2 and "tokens:1: expected NAME SCOPES sha256:HEX" in out.stderr
    files = make_self_signed(tmp_path / "tls", ["localhost"])
    other = make_self_signed(tmp_path / "other", ["localhost"])
    out = _serve(tmp_path, "--listen", "127.0.0.1:0", env={"RAGD_TLS_CERT_FILE": str(files["server_cert"]),
                                                             "RAGD_TLS_KEY_FILE": str(other["server_key"])})
    assert out.returncode == 2 and "does not belong to the certificate" in out.stderr


# ---------------------------------------------------------------- helpers

def _ok(call) -> bool:
    try:
        call()
        return True
    except Exception:  # noqa: BLE001
        return False


def _refused(call, cls) -> bool:
    try:
        call()
    except cls:
        return True
    return False


def _until(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
