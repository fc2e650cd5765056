"""Atomic file and folder writes: readers see the old state or the new one, never half of it."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def swap_in(staged: Path, target: Path) -> None:
    """Replace folder ``target`` by ``staged`` (both on one file system).

    Two renames: the old folder is moved aside and the staged one moved in, so a crash leaves
    either the complete old folder or the complete new one (and at worst an ``.old-*`` folder
    to delete).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    if old.exists():
        shutil.rmtree(old)
