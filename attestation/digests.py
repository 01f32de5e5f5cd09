"""SHA-256 digests of subject files and directories, recomputable by an auditor without Lethe's model code."""

from __future__ import annotations

import hashlib
from pathlib import Path

from attestation.errors import InputError

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    return digest.hexdigest()


def dir_sha256(path: Path) -> str:
    """SHA-256 over the sorted (relative name, bytes) of every file under a directory.

    Each file contributes len(name) as 8 bytes big-endian, the POSIX relative name in UTF-8,
    len(data) as 8 bytes big-endian, then the data: the length prefixes keep the boundaries
    unambiguous. This is the digest Lethe records for model and adapter directories.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"cannot digest {root}: it is not a directory")
    digest = hashlib.sha256()
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            name = file.relative_to(root).as_posix().encode()
            data = file.read_bytes()
            digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
            digest.update(data)
    except OSError as exc:
        raise InputError(f"cannot read {root} for its digest: {exc}") from exc
    return digest.hexdigest()


def path_sha256(path: Path) -> str:
    """`dir_sha256` of a directory, `file_sha256` of a file."""
    path = Path(path)
    if path.is_dir():
        return dir_sha256(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    return file_sha256(path)
