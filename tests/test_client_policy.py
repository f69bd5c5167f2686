"""The Python and Ruby clients follow one call policy (README: "Client
deadlines and retries"): the same default address, deadlines and gRPC retry
policy, each written once per language."""
from __future__ import annotations

import json
import subprocess

from conftest import REPO

from ragd_client import policy

RUBY = """
require "ragd/client"
c = Ragd::Client
puts JSON.generate(address: c::DEFAULT_ADDRESS, timeout: c::TIMEOUT_S, stream_timeout: c::STREAM_TIMEOUT_S,
                   service_config: JSON.parse(c::SERVICE_CONFIG),
                   defaults: c.new("h:1").then { |x| [x.timeout, x.stream_timeout] })
"""


def test_python_and_ruby_clients_share_deadlines_and_retries():
    out = subprocess.run(["ruby", "-Iclients/ruby/lib", "-e", RUBY], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    ruby = json.loads(out)
    assert ruby["address"] == policy.DEFAULT_ADDRESS
    assert (ruby["timeout"], ruby["stream_timeout"]) == (policy.TIMEOUT_S, policy.STREAM_TIMEOUT_S)
    assert ruby["defaults"] == [policy.TIMEOUT_S, policy.STREAM_TIMEOUT_S]
    assert ruby["service_config"] == json.loads(policy.SERVICE_CONFIG)
