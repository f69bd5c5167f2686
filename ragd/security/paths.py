"""Admin operations write only where the operator said: a backup is named by
the caller and placed in the configured backup directory, never at a path the
caller chose.

A name is one path component of letters, digits, '.', '_' and '-' (not '.'
or '..'), so `..`, absolute paths and separators are refused outright. The
target must not exist, not even as a dangling symlink (a symlink planted in
the backup directory could otherwise redirect the backup elsewhere), and its
resolved parent must be the resolved backup directory.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ragd.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def backup_target(backup_dir: Path, name: str, field: str = "path") -> Path:
    """backup_dir/name, checked; raises InvalidArgument naming `field`."""
    if not name:
        raise InvalidArgument(field, "name the backup (letters, digits, '.', '_', '-'); it is written under "
                                     "the daemon's server.backup_dir")
    if not _NAME.match(name) or name in (".", ".."):
        raise InvalidArgument(field, f"{name[:200]!r} is not a backup name: one path component of letters, "
                                     "digits, '.', '_' and '-' (no '/', no '..', no absolute path)")
    backup_dir.mkdir(parents=True, exist_ok=True)
    root = backup_dir.resolve()
    target = root / name
    if os.path.lexists(target):
        raise InvalidArgument(field, f"a backup named {name!r} exists; pick a new name")
    if target.parent.resolve() != root:
        raise InvalidArgument(field, f"{name!r} escapes the backup directory")
    return target
