"""Lethe's files on the local disk: owner-only modes whatever the umask, and locks between processes.

Texts, raw identifiers and keys live under the state folder, so everything there is created owner-only
(0600 files, 0700 folders). Entry points (the CLI, the API, the Dagster definitions, the Neo4j and Dagster
children) narrow the process umask once; the stores that hold personal data also set their own modes,
so a library caller with a loose umask gets the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_FILE = stat.S_IRUSR | stat.S_IWUSR                   # 0600
PRIVATE_DIR = stat.S_IRUSR | stat.S_IWUSR | stat.S_IXUSR     # 0700


def restrict_umask() -> int:
    """Narrow this process's umask so that group and others get nothing; returns the previous one."""
    previous = os.umask(PRIVATE_UMASK)
    os.umask(previous | PRIVATE_UMASK)
    return previous


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) and make it owner-only (0700)."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):  # each new parent owner-only too (mkdir -p would give it the umask's mode)
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        os.chmod(folder, PRIVATE_DIR)
    if not missing:
        os.chmod(path, PRIVATE_DIR)
    return path


def make_private(*paths: Path) -> None:
    """Make existing files owner-only (0600); missing ones are skipped."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, PRIVATE_FILE)


def tighten_tree(root: Path) -> int:
    """Take group and other permissions off every file and folder under `root` (the folder itself too);
    returns how many changed. For folders written by a child process that ran under an older umask."""
    changed = 0
    for path in [Path(root), *Path(root).rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode) or not mode & 0o077:
            continue
        os.chmod(path, stat.S_IMODE(mode) & ~0o077)
        changed += 1
    return changed


@contextlib.contextmanager
def atomic_private_file(path: Path, binary: bool = False) -> Iterator[IO]:
    """A handle whose content replaces `path` when the block ends, owner-only (0600): a temporary file of
    its own, flushed to disk, then a rename, so a crash leaves the old or the new file and concurrent
    writers never share a temporary file. An error in the block leaves `path` as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private_text(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically, owner-only (see `atomic_private_file`)."""
    with atomic_private_file(path) as handle:
        handle.write(text)


def write_private_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically, owner-only (see `atomic_private_file`)."""
    with atomic_private_file(path, binary=True) as handle:
        handle.write(data)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created owner-only) until the block ends: between threads (each
    takes its own open file) and between processes; released by the kernel if the holder dies."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
