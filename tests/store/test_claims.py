"""Claims: many workers racing for one queue each take different rows, every row exactly once, on both stores."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, and_, or_, select

from interlink.app.org import Org
from interlink.store.claims import claim, holder_id, holder_is_gone, process_alive
from interlink.store.database import utcnow


def queue_table(org: Org) -> Table:
    table = Table(f"test_queue_{uuid.uuid4().hex[:8]}", MetaData(),
                  Column("id", Integer, primary_key=True, autoincrement=False),
                  Column("claimed_by", String(64), nullable=True),
                  Column("claimed_until", DateTime, nullable=True),
                  Column("done", Integer, nullable=False, default=0))
    with org.store.write() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"id": index, "done": 0} for index in range(200)])
    return table


def test_racing_workers_claim_each_row_once(org: Org) -> None:
    table = queue_table(org)
    taken: list[tuple[str, int]] = []
    lock = threading.Lock()

    def work() -> None:
        me = holder_id()
        while True:
            now = utcnow()
            free = and_(table.c.done == 0, or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))
            rows = claim(org.store, table, free, order_by=[table.c.id], limit=7,
                         values={"claimed_by": me, "claimed_until": now + timedelta(seconds=60)})
            if not rows:
                return
            assert all(row.claimed_by == me for row in rows)
            with org.store.write() as conn:
                conn.execute(table.update().where(table.c.id.in_([row.id for row in rows]),
                                                  table.c.claimed_by == me).values(done=1))
            with lock:
                taken.extend((me, row.id) for row in rows)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    counts = Counter(row_id for _, row_id in taken)
    assert sorted(counts) == list(range(200)) and set(counts.values()) == {1}
    with org.store.read() as conn:
        assert conn.execute(select(table.c.id).where(table.c.done == 0)).first() is None


def test_an_expired_lease_can_be_claimed_again_but_a_live_one_cannot(org: Org) -> None:
    table = queue_table(org)
    now = utcnow()
    free = or_(table.c.claimed_until.is_(None), table.c.claimed_until < now)
    with org.store.write() as conn:
        conn.execute(table.update().where(table.c.id == 0).values(claimed_by="a",
                                                                  claimed_until=now + timedelta(seconds=60)))
        conn.execute(table.update().where(table.c.id == 1).values(claimed_by="b",
                                                                  claimed_until=now - timedelta(seconds=1)))
    rows = claim(org.store, table, and_(table.c.id < 2, free), order_by=[table.c.id], limit=5,
                 values={"claimed_by": "c", "claimed_until": now + timedelta(seconds=30)})
    assert [(row.id, row.claimed_by) for row in rows] == [(1, "c")]


def test_a_holder_is_gone_only_when_its_process_of_this_host_has_exited() -> None:
    mine = holder_id()
    assert not holder_is_gone(mine)  # this process
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                            text=True, check=True)
    dead_pid = int(exited.stdout)
    host = mine.rsplit(":", 1)[0]
    assert not process_alive(dead_pid)
    assert holder_is_gone(f"{host}:{dead_pid}-abc")
    assert not holder_is_gone(f"another-host:{dead_pid}-abc")  # left to its lease
    assert not holder_is_gone(f"{host}:{os.getppid()}-abc")  # alive
    assert not holder_is_gone("garbage")
