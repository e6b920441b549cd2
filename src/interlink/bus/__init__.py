"""The event bus: channels, replay ids, retention, and the backends that keep the log.

Platform events and change events are Avro datums appended to a durable log and read back by
subscribers from a replay position. ``EventBus`` (bus.py) is the one entry point; the log itself is a
``BusBackend``: the embedded SQLite log (sqlite_log.py, the default) or NATS JetStream (nats_log.py).
"""
