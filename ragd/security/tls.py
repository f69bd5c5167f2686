"""TLS material: server credentials that rotate without a restart, and a
helper that makes a throw-away CA with server (and client) certificates.

Rotation uses gRPC's own mechanism: `grpc.dynamic_ssl_server_credentials`
asks a fetcher for the certificate configuration at every new TLS handshake;
ours answers None (keep the current one) unless a file changed on disk or a
SIGHUP asked for a reload, and then answers the new files. Connections open
at the moment keep the certificate they were made with; new ones get the new
one. A pair that does not load (a key that does not match its certificate, a
half-written file) is refused with a log line and the previous pair stays in
use, so a botched rotation never takes the daemon off the air.
"""
from __future__ import annotations

import datetime
import ipaddress
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger("ragd.tls")


class TlsError(ValueError):
    pass


@dataclass(frozen=True)
class _Material:
    key: bytes
    chain: bytes
    client_ca: bytes | None
    stamp: tuple


def _stamp(paths: list[Path]) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


def _check_pair(key_pem: bytes, chain_pem: bytes, where: str) -> None:
    """Refuse a key that is not the certificate's (a rotation caught half-way)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        cert = x509.load_pem_x509_certificate(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"{where}: cannot load the certificate or key: {exc}") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, pub) != \
            key.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise TlsError(f"{where}: the private key does not belong to the certificate")


class RotatingCredentials:
    """Server credentials re-read from cert_file/key_file/client_ca_file when they change or on `reload()`."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str = ""):
        self.paths = [Path(cert_file), Path(key_file)] + ([Path(client_ca_file)] if client_ca_file else [])
        self.mutual = bool(client_ca_file)
        self._lock = threading.Lock()
        self._forced = False
        self._current = self._load()  # at start, unloadable files are fatal (raised)
        self.loads = 1

    def _load(self) -> _Material:
        stamp = _stamp(self.paths)
        try:
            chain, key = self.paths[0].read_bytes(), self.paths[1].read_bytes()
            ca = self.paths[2].read_bytes() if self.mutual else None
        except OSError as exc:
            raise TlsError(f"{exc.filename}: {exc.strerror}") from None
        _check_pair(key, chain, f"{self.paths[0]} / {self.paths[1]}")
        return _Material(key, chain, ca, stamp)

    def _configuration(self, m: _Material):
        return grpc.ssl_server_certificate_configuration([(m.key, m.chain)], root_certificates=m.client_ca)

    def reload(self) -> None:
        """Re-read the files at the next handshake even if they look unchanged (SIGHUP)."""
        self._forced = True

    def _fetch(self):
        # Called by gRPC at every new handshake: one stat per file, nothing more, unless something changed.
        with self._lock:
            if not self._forced and _stamp(self.paths) == self._current.stamp:
                return None
            self._forced = False
            try:
                fresh = self._load()
            except TlsError as exc:
                log.error("TLS: keeping the current certificate: %s", exc)
                self._current = _Material(self._current.key, self._current.chain, self._current.client_ca,
                                          _stamp(self.paths))  # do not retry until the files change again
                return None
            self._current = fresh
            self.loads += 1
            log.info("TLS: loaded the new certificate from %s", self.paths[0])
            return self._configuration(fresh)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(self._configuration(self._current), self._fetch,
                                                   require_client_authentication=self.mutual)


# ---------------------------------------------------------------- self-signed helper

def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(subject_cn: str, key, issuer_cn: str, issuer_key, days: int, *, ca: bool = False,
           hosts: list[str] | None = None, client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject_cn)).issuer_name(_name(issuer_cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False,
                                          encipher_only=False, decipher_only=False), critical=True)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if hosts:
        names = []
        for h in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_self_signed(out_dir: str | Path, hosts: list[str], clients: list[str] = (), days: int = 365,
                     ca_name: str = "") -> dict[str, Path]:
    """A throw-away CA and a server certificate for `hosts` (DNS names or IPs), plus one
    client certificate per name in `clients` (for mutual TLS), written as PEM files in
    `out_dir`: ca.pem, server.pem, server.key, CLIENT.pem, CLIENT.key. Keys are 0600.
    For trying TLS out; production certificates come from the operator's own CA."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # A distinct CA name each time: during a rotation both CAs sit in one bundle, and
    # certificates are matched to their issuer by name before the signature is checked.
    ca_name = ca_name or f"ragd throw-away CA {secrets.token_hex(4)}"
    ca_key = _key()
    ca_cert = _issue(ca_name, ca_key, ca_name, ca_key, days, ca=True)
    files = {"ca": out / "ca.pem"}
    files["ca"].write_bytes(_pem_cert(ca_cert))
    for label, cn, client in [("server", hosts[0], False)] + [(c, c, True) for c in clients]:
        key = _key()
        cert = _issue(cn, key, ca_name, ca_key, days, hosts=None if client else hosts, client=client)
        key_path, cert_path = out / f"{label}.key", out / f"{label}.pem"
        key_path.touch(mode=0o600)
        key_path.write_bytes(_pem_key(key))
        cert_path.write_bytes(_pem_cert(cert))
        files[f"{label}_key"], files[f"{label}_cert"] = key_path, cert_path
    return files
