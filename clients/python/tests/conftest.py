"""The client's tests run against a real daemon named by RAGD_ADDRESS (the
repository's tests/test_python_client_alone.py starts one and runs these in a
virtualenv holding ragd-client alone)."""
from __future__ import annotations

import os
import uuid

import pytest

from ragd_client import RagClient


@pytest.fixture(scope="session")
def address() -> str:
    address = os.environ.get("RAGD_ADDRESS")
    if not address:
        pytest.skip("RAGD_ADDRESS not set: no daemon to test against")
    with RagClient(address) as c:
        c.wait_ready(timeout=300)
    return address


@pytest.fixture(scope="session")
def collection() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"  # a run of its own, whatever the daemon holds


@pytest.fixture(scope="session")
def client(address, collection):
    with RagClient(address, collection=collection, timeout=120) as c:
        yield c
