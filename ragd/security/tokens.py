"""Bearer tokens: the operator-managed file, stored hashed, and verification.

A token is `ragd_` + 43 characters of URL-safe base64 (32 random bytes). The
file keeps one line per token, `NAME SCOPES sha256:HEX`, never the token
itself: whoever reads the file (or a backup of it) cannot call the daemon.
SHA-256 without a salt or a slow KDF is enough here because a token is 256
random bits, not a password a person chose: there is nothing to guess
(GitHub stores its tokens the same way).

Verification hashes the presented token and compares it with every stored hash
using hmac.compare_digest, without stopping at a match, so the time taken says
nothing about which tokens exist. The daemon re-reads the file when its
modification time or size changes (checked at most once a second), so `ragd
token create|revoke` take effect without a restart.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("search", "write", "admin", "metrics")
PREFIX = "ragd_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HEADER = ("# ragd bearer tokens: NAME SCOPES sha256:HASH, one per line. The tokens themselves are not stored.\n"
          "# Managed with `ragd token create|list|revoke --tokens-file THIS_FILE`; the daemon re-reads it on change.\n")


class TokenFileError(ValueError):
    pass


@dataclass(frozen=True)
class TokenEntry:
    name: str
    scopes: frozenset[str]
    digest: bytes  # sha256 of the token


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if not scopes or unknown:
        raise TokenFileError(f"scopes {text!r}: use a comma-separated list of {', '.join(SCOPES)}")
    return scopes


def read_tokens(path: str | os.PathLike) -> list[TokenEntry]:
    """The file's entries; raises TokenFileError naming the line of a malformed one."""
    entries: list[TokenEntry] = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenFileError(f"{path}: no such tokens file (create one with `ragd token create`)") from None
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the tokens file: {exc.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("sha256:"):
            raise TokenFileError(f"{path}:{lineno}: expected NAME SCOPES sha256:HEX")
        name, scopes, hashed = parts
        if not _NAME.match(name):
            raise TokenFileError(f"{path}:{lineno}: bad token name {name!r}")
        try:
            raw = bytes.fromhex(hashed[len("sha256:"):])
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise TokenFileError(f"{path}:{lineno}: the hash is not 64 hex digits")
        try:
            entries.append(TokenEntry(name, parse_scopes(scopes), raw))
        except TokenFileError as exc:
            raise TokenFileError(f"{path}:{lineno}: {exc}") from None
    return entries


def _write(path: Path, entries: list[TokenEntry]) -> None:
    # Atomic and private: a reader sees the old or the new file, never half of one.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(HEADER)
        for e in entries:
            fh.write(f"{e.name} {','.join(sorted(e.scopes))} sha256:{e.digest.hex()}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def create_token(path: str | os.PathLike, name: str, scopes: str) -> str:
    """Add a token named `name`; returns the token (shown once, stored only hashed)."""
    path = Path(path)
    if not _NAME.match(name):
        raise TokenFileError(f"token name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting with a "
                             "letter or digit")
    parsed = parse_scopes(scopes)
    entries = read_tokens(path) if path.exists() else []
    if any(e.name == name for e in entries):
        raise TokenFileError(f"a token named {name!r} exists; revoke it first or pick another name")
    token = PREFIX + secrets.token_urlsafe(32)
    entries.append(TokenEntry(name, parsed, digest(token)))
    _write(path, entries)
    return token


def revoke_token(path: str | os.PathLike, name: str) -> None:
    path = Path(path)
    entries = read_tokens(path)
    kept = [e for e in entries if e.name != name]
    if len(kept) == len(entries):
        raise TokenFileError(f"no token named {name!r} in {path}")
    _write(path, kept)


class TokenSet:
    """The daemon's view of the tokens file, re-read when it changes.

    A file that turns unreadable or malformed while serving keeps the last good
    set (logged by the caller through `last_error`): a typo must not lock every
    client out, nor open the daemon.
    """

    RECHECK_S = 1.0

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._entries = read_tokens(self.path)  # at start a bad file is fatal (raised)
        self._checked = time.monotonic()
        self.last_error: str | None = None

    def _file_stamp(self):
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, force: bool = False) -> bool:
        """Re-read the file if it changed (or `force`); True when the set was replaced."""
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._file_stamp()
            if stamp == self._stamp and not force:
                return False
            try:
                entries = read_tokens(self.path)
            except TokenFileError as exc:
                self.last_error = str(exc)
                self._stamp = stamp
                return False
            self._entries, self._stamp, self.last_error = entries, stamp, None
            return True

    def verify(self, token: str) -> TokenEntry | None:
        """The entry the token belongs to, or None. Constant time in the token's value."""
        if time.monotonic() - self._checked >= self.RECHECK_S:
            self.reload()
        presented = digest(token)
        found = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest) and found is None:
                found = entry
        return found

    def __len__(self) -> int:
        return len(self._entries)
