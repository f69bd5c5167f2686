"""The clients' call policy: address, deadlines and retries.

The Ruby gem (clients/ruby/lib/ragd/client.rb) uses the same values;
tests/test_client_policy.py fails when the two differ. Why these numbers:

- Every call has a deadline, so a stalled daemon costs a caller its timeout and
  no more. 10 s per unary call: a search answers in milliseconds, and a batch of
  100 documents upserted with wait=True is embedded on a busy 2-core CPU in a
  few seconds; a web request (Redmine's search page) should pass its own,
  shorter timeout and fall back to Redmine's search on Unavailable.
- 600 s for a whole stream (IndexStream, SearchStream, WatchJob, Answer): long enough
  for a large reindex batch by batch, bounded so a forgotten stream ends.
  Python callers may pass stream_timeout=None (no deadline; `ragd index` does).
- UNAVAILABLE (daemon starting, restarting or draining, connection refused) is
  retried by gRPC itself: at most 5 attempts (gRPC's cap), backoff from 0.2 s
  doubling to 2 s with gRPC's jitter, never past the call's deadline. Every
  RagService method is safe to retry: upserts replace (versions order them),
  deletes remove, the rest read. Nothing else is retried: RESOURCE_EXHAUSTED
  carries a retry-after hint for the caller, DEADLINE_EXCEEDED spent the budget.
"""
from __future__ import annotations

import json
import os

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_VARIABLE = "RAGD_ADDRESS"  # the daemon ignores it (ragd/config.py), so one shell can set it for both
TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 600.0
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps({"methodConfig": [{"name": [{"service": "ragd.v1.RagService"}],
                                               "retryPolicy": RETRY_POLICY}]})


def default_address() -> str:
    return os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, object]]:
    return [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)]
