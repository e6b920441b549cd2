"""Durable background work: Bulk API 2.0 ingest and query jobs, run by workers any process can host."""
