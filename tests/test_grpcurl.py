"""grpcurl against the daemon through server reflection (no .proto files given)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import REPO


def grpcurl_bin() -> str:
    found = shutil.which("grpcurl") or str(REPO / ".tools/bin/grpcurl")
    assert os.access(found, os.X_OK), "grpcurl missing: scripts/setup.sh builds it into .tools/bin"
    return found


@pytest.fixture(scope="module")
def served(module_daemon):
    return module_daemon()


def grpcurl(served, *args, data: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [grpcurl_bin(), "-plaintext", "-max-time", "60"]
    if data is not None:
        cmd += ["-d", "@"]
    cmd += [served.address, *args]
    proc = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=90)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_list_and_describe(served):
    services = grpcurl(served, "list").stdout.split()
    assert {"ragd.v1.RagService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
    described = grpcurl(served, "describe", "ragd.v1.RagService").stdout
    for rpc in ("Upsert", "IndexStream", "Delete", "Search", "SearchStream", "Similar", "Embed", "GetJob",
                "WatchJob", "Stats"):
        assert f"rpc {rpc} (" in described
    assert "project_ids" in grpcurl(served, "describe", "ragd.v1.Filter").stdout


def test_health_is_serving(served):
    out = json.loads(grpcurl(served, "grpc.health.v1.Health/Check", data="{}").stdout)
    assert out["status"] == "SERVING"


def test_upsert_then_search(served):
    docs = {"collection": "gc", "wait": True, "documents": [
        {"id": "issue:1", "title": "Login fails with LDAP", "text": "Users cannot sign in since the LDAP upgrade.",
         "projectId": "3", "type": "issue", "updatedAt": "2026-11-01T10:00:00Z", "version": "1"},
        {"id": "wiki:3:Backups", "title": "Backups", "text": "Nightly backups run at 02:00 with restic.",
         "projectId": "3", "type": "wiki"}]}
    out = json.loads(grpcurl(served, "ragd.v1.RagService/Upsert", data=json.dumps(docs)).stdout)
    assert [a["status"] for a in out["acks"]] == ["ACK_STATUS_INDEXED"] * 2
    query = {"collection": "gc", "query": "authentication problem", "topK": 1, "filter": {"projectIds": ["3"]}}
    out = json.loads(grpcurl(served, "ragd.v1.RagService/Search", data=json.dumps(query)).stdout)
    # grpcurl prints proto field names; it accepts them or lowerCamelCase as input.
    assert out["hits"][0]["document_id"] == "issue:1"
    assert out["hits"][0]["document"]["updated_at"] == "2026-11-01T10:00:00Z"
    assert out["mode"] == "SEARCH_MODE_HYBRID"  # AUTO routed a natural-language query
    assert "total_ms" in out["timings"]


def test_index_stream_with_several_messages(served):
    messages = "\n".join(json.dumps({"collection": "gs", "documents": [{"id": f"n{i}", "text": f"note {i}"}]})
                         for i in range(3))
    out = grpcurl(served, "ragd.v1.RagService/IndexStream", data=messages).stdout
    acks = [json.loads(chunk)["acks"][0]["id"] for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert acks == ["n0", "n1", "n2"]


def test_bad_input_reports_the_field(served):
    proc = grpcurl(served, "ragd.v1.RagService/Search", data=json.dumps({"query": "x", "topK": 1000000000}),
                   check=False)
    assert proc.returncode != 0
    assert "InvalidArgument" in proc.stderr and "top_k" in proc.stderr


def test_grants_as_the_readme_writes_them(served):
    docs = {"collection": "gg", "wait": True, "documents": [
        {"id": "issue:1", "title": "Login fails with LDAP", "text": "Users cannot sign in since the LDAP upgrade.",
         "projectId": "3", "type": "issue", "authorId": "7", "trackerId": "1", "ownerIds": ["7", "40"]},
        {"id": "issue:2", "title": "Login page typo", "text": "The sign in page misspells password.",
         "projectId": "5", "type": "issue", "isPrivate": True, "authorId": "8", "trackerId": "1", "ownerIds": ["8"]},
        {"id": "issue:3", "title": "Login via SSO", "text": "Support single sign on for the login.",
         "projectId": "5", "type": "issue", "isPrivate": True, "authorId": "8", "trackerId": "2",
         "ownerIds": ["8", "40"]},
        {"id": "journal:9", "title": "Login fails with LDAP", "text": "Private: the LDAP password expired.",
         "projectId": "3", "type": "journal", "authorId": "8", "trackerId": "1", "ownerIds": ["7", "40"],
         "privateNote": True},
        {"id": "wiki:5:Login", "title": "Login", "text": "How sign in works.", "projectId": "5", "type": "wiki"}]}
    out = json.loads(grpcurl(served, "ragd.v1.RagService/Upsert", data=json.dumps(docs)).stdout)
    assert [a["status"] for a in out["acks"]] == ["ACK_STATUS_INDEXED"] * 5
    flt = {"userId": "7", "groupIds": ["40"], "grants": [
        {"types": ["issue", "journal"], "projectIds": ["3"], "visibility": "VISIBILITY_ALL", "privateNotes": True},
        {"types": ["issue", "journal"], "projectIds": ["5"], "visibility": "VISIBILITY_DEFAULT",
         "trackerIds": ["1", "2"]},
        {"types": ["wiki"], "projectIds": ["3", "5"], "visibility": "VISIBILITY_ALL"}]}
    query = {"collection": "gg", "query": "sign in problem", "topK": 10, "mode": "SEARCH_MODE_VECTOR",
             "groupByDocument": True, "minScore": -1, "filter": flt}
    out = json.loads(grpcurl(served, "ragd.v1.RagService/Search", data=json.dumps(query)).stdout)
    # issue:2 is private and not theirs; issue:3 is assigned to their group 40.
    assert sorted(h["document_id"] for h in out["hits"]) == ["issue:1", "issue:3", "journal:9", "wiki:5:Login"]
    assert {h["document_id"]: h["document"].get("private_note", False) for h in out["hits"]}["journal:9"] is True
    flt["grants"][1]["projectIds"] = []
    proc = grpcurl(served, "ragd.v1.RagService/Search", data=json.dumps(query), check=False)
    assert proc.returncode != 0 and "filter.grants[1].project_ids: empty" in proc.stderr


def test_reflection_v1_is_served_beside_v1alpha(served):
    import grpc
    from google.protobuf.descriptor_pb2 import FileDescriptorProto
    from grpc_reflection.v1alpha import reflection_pb2 as r

    services = set(grpcurl(served, "list").stdout.split())
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= services
    assert "rpc ServerReflectionInfo (" in grpcurl(served, "describe", "grpc.reflection.v1.ServerReflection").stdout
    # Asked over v1 itself, as current grpcurl and Postman do (same messages as v1alpha).
    with grpc.insecure_channel(served.address) as channel:
        call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=r.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=r.ServerReflectionResponse.FromString)
        listed, described = call(iter([r.ServerReflectionRequest(list_services=""),
                                       r.ServerReflectionRequest(file_containing_symbol="ragd.v1.RagService")]),
                                 timeout=60)
    assert "ragd.v1.RagService" in {s.name for s in listed.list_services_response.service}
    files = [FileDescriptorProto.FromString(b) for b in described.file_descriptor_response.file_descriptor_proto]
    assert any(f.package == "ragd.v1" and any(s.name == "RagService" for s in f.service) for f in files)
