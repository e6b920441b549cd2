"""Create the example marketing database (SQLite) the prospect import reads.

    python examples/sync/make_source_db.py prospects.db --rows 5000

Prospects are deterministic; many share one ``updated_at`` (as rows loaded in one statement do), which is the
case a timestamp-only watermark gets wrong. ``--touch N`` marks N existing prospects as changed now.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import UTC, datetime, timedelta

RATINGS = ("Hot", "Warm", "Cold")


def create(path: str, rows: int) -> None:
    """A fresh ``prospects`` table with ``rows`` prospects; 100 share each timestamp."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS prospects")
        db.execute("CREATE TABLE prospects (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, company TEXT,"
                   " email TEXT, rating TEXT, updated_at TIMESTAMP NOT NULL)")
        db.executemany("INSERT INTO prospects VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (n, f"First{n}", f"Last{n}", f"Company {n % 97}", f"prospect{n}@example.com", RATINGS[n % 3],
             (base + timedelta(minutes=n // 100)).strftime("%Y-%m-%d %H:%M:%S")) for n in range(1, rows + 1)])


def touch(path: str, count: int, *, now: datetime | None = None) -> None:
    """Change ``count`` prospects (the highest ids) now, as the marketing tool would."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE prospects SET rating = 'Hot', updated_at = ? WHERE id IN "
                   "(SELECT id FROM prospects ORDER BY id DESC LIMIT ?)", (stamp, count))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--touch", type=int, default=0, help="change this many existing prospects instead")
    options = parser.parse_args()
    if options.touch:
        touch(options.path, options.touch)
    else:
        create(options.path, options.rows)


if __name__ == "__main__":
    main()
