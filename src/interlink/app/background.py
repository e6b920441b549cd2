"""The org's background jobs in a process of their own (``interlink worker --jobs``).

Bulk API jobs, async callouts, outbound messages, platform-event-triggered and scheduled flows are queued in the
store and claimed with leases (:mod:`interlink.store.claims`), so any number of API processes (without
``--no-jobs``) and job workers share them and each job runs once. A worker also does what an API process does in
the background: housekeeping (usage counters, the event outbox, old jobs), picking up metadata that ``interlink
deploy`` changed and project code that changed, and a heartbeat in the process registry (``interlink doctor``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interlink.app.org import Org

log = logging.getLogger(__name__)

UPKEEP_SECONDS = 1.0


def run_background_jobs(org: Org, stop: threading.Event, *, upkeep_seconds: float = UPKEEP_SECONDS) -> None:
    """Run ``org``'s background jobs on ``org.settings.bulk_workers`` threads until ``stop`` is set; then finish
    the work in hand and give back what is claimed."""
    membership = org.processes.membership("worker", {
        "jobs": org.settings.bulk_workers > 0, "threads": org.settings.bulk_workers, "bus": org.bus.backend.name})
    membership.start()
    org.start_workers()
    try:
        while not stop.wait(upkeep_seconds):
            changed = False
            try:
                changed = org.upkeep()
            except Exception:
                log.exception("background upkeep failed")
            membership.beat(force=changed)
    finally:
        org.stop_workers()
        membership.stop()


__all__ = ["run_background_jobs"]
