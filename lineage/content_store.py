"""The source store for record text (SQLite): the graph points here and keeps only hashes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from lineage.local_files import make_private, private_dir
from lineage.turns import Turn, decode_turns, encode_turns

CONTENT_REF_PREFIX = "lethe-content:"


class ContentStore:
    """Record texts by id in one SQLite file; erasing a record deletes its text."""

    def __init__(self, path: Path):
        private_dir(path.parent)
        self.path = path
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Texts are personal data: the database and its WAL and shared-memory files are the owner's alone.
        make_private(path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        # Erased texts are overwritten with zeros, not just unlinked from the b-tree.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS content (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, text TEXT NOT NULL)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(content)")}
        if "turns" not in columns:  # a store from before chat records: plain records have no turns
            self._db.execute("ALTER TABLE content ADD COLUMN turns TEXT")
        self._db.commit()

    @staticmethod
    def ref(record_id: str) -> str:
        """The `content_ref` the graph stores for a record."""
        return CONTENT_REF_PREFIX + record_id

    def put_many(self, rows: Iterable[tuple[str, str, str, Sequence[Turn] | None]]) -> None:
        """Store (id, sha256, text, turns) rows in one transaction; existing ids are left as they are.

        `turns`: where a chat record's messages sit in its text (lineage.turns), None for a plain record."""
        with self._db:
            self._db.executemany("INSERT OR IGNORE INTO content (id, sha256, text, turns) VALUES (?, ?, ?, ?)",
                                 ((rid, sha, text, encode_turns(turns)) for rid, sha, text, turns in rows))

    def get(self, record_id: str) -> str | None:
        row = self._db.execute("SELECT text FROM content WHERE id = ?", (record_id,)).fetchone()
        return row[0] if row else None

    def get_many(self, ids: Sequence[str]) -> dict[str, str]:
        """id -> text of the stored records among `ids`."""
        return self._by_id("text", ids)

    def turns(self, ids: Sequence[str]) -> dict[str, list[Turn]]:
        """id -> turns of the stored chat records among `ids` (plain records are left out)."""
        return {rid: decode_turns(stored) for rid, stored in self._by_id("turns", ids).items() if stored}

    def hashes(self, ids: Sequence[str]) -> dict[str, str]:
        """id -> content hash of the stored texts among `ids`."""
        return self._by_id("sha256", ids)

    def _by_id(self, column: str, ids: Sequence[str]) -> dict[str, str]:
        # 500 ids a query: under SQLite's limit on bound parameters.
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            out.update(self._db.execute(f"SELECT id, {column} FROM content WHERE id IN ({marks})", chunk))
        return out

    def iter_texts(self, batch: int = 2000) -> Iterator[dict[str, str]]:
        """Every stored text, in id order, `batch` at a time (id -> text)."""
        last = ""
        while True:
            rows = self._db.execute("SELECT id, text FROM content WHERE id > ? ORDER BY id LIMIT ?",
                                    (last, batch)).fetchall()
            if not rows:
                return
            yield dict(rows)
            last = rows[-1][0]

    def delete_many(self, ids: Sequence[str]) -> int:
        """Delete the texts of erased records; returns how many were present."""
        with self._db:
            cur = self._db.executemany("DELETE FROM content WHERE id = ?", [(i,) for i in ids])
        # The write-ahead log still holds the pages as they were: fold it into the database and empty it.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return cur.rowcount

    def close(self) -> None:
        self._db.close()
