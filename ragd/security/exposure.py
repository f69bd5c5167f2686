"""Secure by default: who may reach the daemon, decided before it listens.

Without authentication ragd serves on loopback only. A non-loopback gRPC
address needs both auth (auth.tokens_file) and TLS (tls.cert_file): a bearer
token sent in clear can be read off the wire and replayed. A non-loopback
/metrics address needs auth.metrics_token. `server.insecure` overrides all of
it, and is logged loudly at every start.
"""
from __future__ import annotations

import ipaddress
import logging

from ragd.config import Config, ConfigError

log = logging.getLogger("ragd.security")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost, or 0.0.0.0-style wildcards below


def check_exposure(cfg: Config) -> None:
    """Raise ConfigError naming the settings when the configuration would expose the daemon."""
    s = cfg.server
    problems = []
    host = s.listen.rpartition(":")[0]
    if not is_loopback(host):
        missing = [name for name, on in (("auth.tokens_file", cfg.auth.tokens_file),
                                         ("tls.cert_file and tls.key_file", cfg.tls.cert_file)) if not on]
        if missing:
            problems.append(f"server.listen = {s.listen!r} is not a loopback address, and {' and '.join(missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not set: anyone who reaches the port could "
                            "read every document and change the index")
    if s.metrics_listen:
        mhost = s.metrics_listen.rpartition(":")[0]
        if not is_loopback(mhost) and not (cfg.auth.metrics_token and cfg.auth.tokens_file):
            problems.append(f"server.metrics_listen = {s.metrics_listen!r} is not a loopback address and "
                            "auth.metrics_token (with auth.tokens_file) is not set")
    if not problems:
        return
    if s.insecure:
        for p in problems:
            log.warning("INSECURE (server.insecure = true): %s", p)
        return
    raise ConfigError("; ".join(problems) + ". Set them (see README: Running ragd on a network), bind "
                      "127.0.0.1, or set server.insecure = true to accept the risk")
