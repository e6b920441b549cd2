"""The bytes of Bulk jobs, kept in the store in parts of a few megabytes.

Kinds: ``upload`` (the CSV as the client sent it; ``seq`` is upload number * 1000 + piece, ``first_row`` the
number of records uploaded before it), ``success`` / ``failure`` (result lines of one internal batch, ``seq`` = batch
number) and ``result`` (query result lines; ``first_row`` is the first row's number, ``offsets`` where each row
starts). Parts are read one at a time, so no reader holds a whole job in memory.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, select

from interlink.store.database import Store

PART_BYTES = 8 * 1024 * 1024
UPLOAD_SEQ_STRIDE = 1000  # upload parts are numbered upload * 1000 + piece (150 MB / 8 MB needs 19 pieces)


@dataclass(frozen=True)
class PartInfo:
    seq: int
    first_row: int
    rows: int


class Parts:
    """Write and read the parts of jobs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def _table(self):  # type: ignore[no-untyped-def]
        return self.store.system["il_bulk_part"]

    def add(self, conn: Connection, job_id: str, kind: str, seq: int, data: bytes, *, rows: int = 0,
            first_row: int = 0, offsets: array[int] | None = None) -> None:
        conn.execute(self._table.insert().values(
            job_id=job_id, kind=kind, seq=seq, data=data, rows=rows, first_row=first_row,
            offsets=None if offsets is None else offsets.tobytes()))

    def next_seq(self, conn: Connection, job_id: str, kind: str) -> int:
        table = self._table
        last = conn.execute(select(table.c.seq).where(and_(table.c.job_id == job_id, table.c.kind == kind))
                            .order_by(table.c.seq.desc()).limit(1)).scalar()
        return 0 if last is None else last + 1

    def infos(self, job_id: str, kind: str, conn: Connection | None = None) -> list[PartInfo]:
        table = self._table
        query = (select(table.c.seq, table.c.first_row, table.c.rows)
                 .where(and_(table.c.job_id == job_id, table.c.kind == kind)).order_by(table.c.seq))
        if conn is not None:
            return [PartInfo(*row) for row in conn.execute(query)]
        with self.store.read() as reader:
            return [PartInfo(*row) for row in reader.execute(query)]

    def data(self, job_id: str, kind: str, seq: int) -> bytes:
        table = self._table
        with self.store.read() as conn:
            value = conn.execute(select(table.c.data).where(and_(
                table.c.job_id == job_id, table.c.kind == kind, table.c.seq == seq))).scalar()
        return bytes(value) if value is not None else b""

    def offsets(self, job_id: str, seq: int) -> tuple[bytes, array[int]]:
        """A result part's bytes and where each of its rows starts."""
        table = self._table
        with self.store.read() as conn:
            row = conn.execute(select(table.c.data, table.c.offsets).where(and_(
                table.c.job_id == job_id, table.c.kind == "result", table.c.seq == seq))).first()
        starts: array[int] = array("I")
        if row is None:
            return b"", starts
        if row.offsets:
            starts.frombytes(bytes(row.offsets))
        return bytes(row.data), starts

    def stream(self, job_id: str, kind: str) -> Iterator[bytes]:
        """The data of every part of ``kind`` in order, one part in memory at a time."""
        for info in self.infos(job_id, kind):
            yield self.data(job_id, kind, info.seq)

    def uploads(self, job_id: str) -> list[list[int]]:
        """The part numbers of each upload, in upload order."""
        groups: dict[int, list[int]] = {}
        for info in self.infos(job_id, "upload"):
            groups.setdefault(info.seq // UPLOAD_SEQ_STRIDE, []).append(info.seq)
        return [groups[key] for key in sorted(groups)]

    def remove_range(self, conn: Connection, job_id: str, kind: str, low: int, high: int) -> None:
        """Delete the parts of ``kind`` numbered ``low`` to ``high`` (exclusive)."""
        table = self._table
        conn.execute(delete(table).where(and_(table.c.job_id == job_id, table.c.kind == kind, table.c.seq >= low,
                                              table.c.seq < high)))

    def remove(self, conn: Connection, job_id: str, kind: str | None = None) -> None:
        table = self._table
        where = table.c.job_id == job_id
        if kind is not None:
            where = and_(where, table.c.kind == kind)
        conn.execute(delete(table).where(where))


def split(data: bytes, size: int = PART_BYTES) -> list[bytes]:
    """``data`` in pieces of at most ``size`` bytes (at least one piece)."""
    if not data:
        return [b""]
    return [data[start:start + size] for start in range(0, len(data), size)]


__all__ = ["PART_BYTES", "UPLOAD_SEQ_STRIDE", "PartInfo", "Parts", "split"]
