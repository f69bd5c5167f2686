"""Hostile input against a live daemon: every RPC, generated requests.

Hypothesis builds requests from the proto descriptors (extreme numbers, NaN,
unknown enum values, empty and over-long strings, repeated fields and maps of
thousands of entries) and mutates the encoded bytes now and then (truncated,
garbage, invalid UTF-8 in a string field, nesting past protobuf's recursion
limit). Streams are also abandoned midway. Whatever arrives, the daemon must:

- answer with a status that names a caller's problem, never INTERNAL or UNKNOWN
  (DATA_LOSS neither), and stay up (health SERVING at the end);
- leave the store exactly as it was when it rejects a write (Stats of every
  collection, sequence included, before and after);
- keep its memory within a bound (RSS at the end vs after a warm-up).

Requests per RPC are reported (printed, and written to var/test-reports/fuzz.json).
FUZZ_EXAMPLES sets the examples per RPC (default 250: about three thousand requests in all).
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

import grpc
import pytest
from conftest import REPO
from fuzz_proto import build, messages, mutate, mutations, small_enough
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from ragd_client.v1 import ragd_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["RagService"]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
TRACE = bool(os.environ.get("FUZZ_TRACE"))  # print every call with its time
WRITES = {"Upsert", "IndexStream", "Delete"}
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
COUNTS: Counter = Counter()
CODES: dict[str, Counter] = {}
FAILURES: list[str] = []

# Collections are created by the first write that names them: keep generated
# names to a few (an unbounded number of collections is a quota question, not a
# parsing one), but let invalid ones through.
COLLECTION = st.one_of(st.sampled_from(["", "default", "fz", "fz.2"]), st.text(max_size=8).filter(
    lambda s: not s[:1].isalnum() or not all(c.isalnum() or c in "_.-" for c in s)))
# No shrinking: against a live daemon it would replay hundreds of calls; the
# failing request is reported as generated.
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def target(module_daemon):
    d = module_daemon("fuzz", config={"limits": {"max_document_bytes": 200_000}, "jobs": {"batch_size": 8}})
    channel = grpc.insecure_channel(d.address, options=[("grpc.max_send_message_length", 128 * 1024 * 1024),
                                                        ("grpc.max_receive_message_length", 128 * 1024 * 1024)])
    yield d, channel
    channel.close()


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _stats(channel) -> list:
    raw = channel.unary_unary("/ragd.v1.RagService/Stats")(pb.StatsRequest().SerializeToString(), timeout=120)
    resp = pb.StatsResponse.FromString(raw)
    return sorted((c.name, c.documents, c.chunks, c.tombstones, c.sequence, c.index_vectors)
                  for c in resp.collections)


def _wait_job(channel, raw_response: bytes) -> None:
    """An accepted Upsert(wait=false) runs in the background: let it finish, so the
    next rejected write's before/after comparison sees a still store."""
    job_id = pb.UpsertResponse.FromString(raw_response).job_id
    if job_id:
        watch = channel.unary_stream("/ragd.v1.RagService/WatchJob")
        for _ in watch(pb.GetJobRequest(job_id=job_id).SerializeToString(), timeout=600):
            pass


def send(channel, method, payload: bytes, timeout: float = 120):
    """One call with raw request bytes (one message on a stream); (code, raw response or None)."""
    path = f"/{SERVICE.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            out = list(channel.stream_stream(path)(iter([payload]), timeout=timeout))
        elif method.client_streaming:
            out = [channel.stream_unary(path)(iter([payload]), timeout=timeout)]
        elif method.server_streaming:
            out = list(channel.unary_stream(path)(payload, timeout=timeout))
        else:
            out = [channel.unary_unary(path)(payload, timeout=timeout)]
        return grpc.StatusCode.OK, out
    except grpc.RpcError as err:
        return err.code(), err.details()


def _overrides(method) -> dict:
    return {"collection": COLLECTION}


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda m: m.name)
def test_generated_requests(target, method):
    d, channel = target
    cls = getattr(pb, method.input_type.name)

    @SETTINGS
    @given(values=messages(method.input_type, overrides=_overrides(method)), mutation=mutations())
    def one(values, mutation):
        assume(small_enough(values))
        payload = mutate(build(cls, values).SerializeToString(), method.input_type, *mutation)
        before = _stats(channel) if method.name in WRITES else None
        t0 = time.perf_counter()
        code, out = send(channel, method, payload)
        if TRACE:
            print(f"{method.name} {len(payload)} bytes {mutation} -> {code.name} in {time.perf_counter() - t0:.2f} s",
                  flush=True)
        COUNTS[method.name] += 1
        CODES.setdefault(method.name, Counter())[code.name] += 1
        if code in BAD:
            FAILURES.append(f"{method.name} {mutation} -> {code.name}: {out}")
        assert code not in BAD, f"{method.name} answered {code.name}: {out}"
        if before is not None:
            if code == grpc.StatusCode.OK and method.name == "Upsert":
                _wait_job(channel, out[0])
            elif code not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED):
                assert _stats(channel) == before, f"rejected {method.name} ({code.name}: {out}) changed the store"
    one()
    assert d.proc.poll() is None, d.log()[-5000:]


def test_abandoned_streams(target):
    """Streams opened, fed a little and dropped (cancelled, or the client just goes away)."""
    d, channel = target
    doc = pb.Document(text="a document whose stream was abandoned")
    for i in range(30):
        name = ("IndexStream", "SearchStream", "WatchJob")[i % 3]
        path = f"/{SERVICE.full_name}/{name}"
        gate = threading.Event()

        def requests(kind=name, gate=gate):
            # stream_depth (4) messages, so the daemon answers the first without a half-close,
            # then nothing more until the call is dropped.
            for k in range(4):
                if kind == "IndexStream":
                    yield pb.IndexStreamRequest(documents=[pb.Document(id=f"abandoned:{k}", text=doc.text)]
                                                ).SerializeToString()
                else:
                    yield pb.SearchStreamRequest(tag=str(k), request=pb.SearchRequest(query="abandoned")
                                                 ).SerializeToString()
            gate.wait(60)

        if name == "WatchJob":
            call = channel.unary_stream(path)(pb.GetJobRequest(job_id="0" * 32).SerializeToString(), timeout=60)
        else:
            call = channel.stream_stream(path)(requests(), timeout=300)
        if i % 2:
            try:
                next(call)  # one answer, then walk away
            except (grpc.RpcError, StopIteration):
                pass
        call.cancel()
        gate.set()
        COUNTS[f"{name} (abandoned)"] += 1
    assert d.proc.poll() is None


def test_daemon_survived_with_bounded_memory(target):
    d, channel = target
    # Warm-up figure: after the generated requests above (model, indexes and caches at
    # their working size); a second pass of the heaviest RPCs must not grow it much.
    warm = _rss_kib(d.proc.pid)
    search = next(m for m in SERVICE.methods if m.name == "Search")
    embed = next(m for m in SERVICE.methods if m.name == "Embed")
    for i in range(80):
        request = pb.SearchRequest(query=f"query {i} " * (i % 40), top_k=1000 if i % 2 else 5,
                                   filter=pb.Filter(project_ids=range(i * 50)))
        code, _ = send(channel, search, request.SerializeToString())
        assert code not in BAD
        code, _ = send(channel, embed, pb.EmbedRequest(texts=[f"text {i} " * 20] * (i % 20)).SerializeToString())
        assert code not in BAD
        COUNTS["Search (memory pass)"] += 1
        COUNTS["Embed (memory pass)"] += 1
    end = _rss_kib(d.proc.pid)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=60)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert end < warm * 1.25 + 200 * 1024, f"RSS grew from {warm} KiB to {end} KiB"
    report = {"examples_per_rpc": EXAMPLES, "requests": dict(COUNTS), "codes": {k: dict(v) for k, v in CODES.items()},
              "total": sum(COUNTS.values()), "rss_kib": {"warm": warm, "end": end}, "failures": FAILURES}
    out = REPO / "var" / "test-reports"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
