"""A Bulk API 2.0 job as stored, and as the platform shows it (job info JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interlink.jobs.csvdata import CsvFormat
from interlink.metadata.values import format_datetime

INGEST, QUERY, CLASSIC = "V2Ingest", "V2Query", "Classic"
OPEN, UPLOAD_COMPLETE, IN_PROGRESS = "Open", "UploadComplete", "InProgress"
JOB_COMPLETE, FAILED, ABORTED, DELETED = "JobComplete", "Failed", "Aborted", "Deleted"
FINISHED = (JOB_COMPLETE, FAILED, ABORTED)
RUNNABLE = (UPLOAD_COMPLETE, IN_PROGRESS)
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")


@dataclass
class Job:
    """One row of ``il_bulk_job``."""

    id: str
    job_type: str
    operation: str
    object: str
    external_id_field: str | None
    assignment_rule_id: str | None
    query: str | None
    column_delimiter: str
    line_ending: str
    state: str
    error_message: str | None
    created_by_id: str
    created_date: datetime
    system_modstamp: datetime
    api_version: str
    columns_json: str | None
    content_type: str | None
    concurrency_mode: str | None
    uploads: int
    upload_bytes: int
    records_uploaded: int
    batches_done: int
    records_processed: int
    records_failed: int
    retries: int
    processing_ms: int
    api_active_ms: int
    result_bytes: int
    claimed_by: str | None
    claimed_until: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(**{name: row._mapping[name] for name in cls.__dataclass_fields__})

    @property
    def format(self) -> CsvFormat:
        return CsvFormat(self.column_delimiter, self.line_ending)

    @property
    def columns(self) -> list[str]:
        return json.loads(self.columns_json) if self.columns_json else []

    @property
    def is_ingest(self) -> bool:
        return self.job_type == INGEST

    def resource(self) -> str:
        return "ingest" if self.is_ingest else "query"

    def to_wire(self, *, full: bool = True) -> dict[str, Any]:
        """The job info body. ``full`` adds the progress counters (GET job info and job lists)."""
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by_id,
            "createdDate": format_datetime(self.created_date),
            "systemModstamp": format_datetime(self.system_modstamp),
            "state": self.state,
        }
        if self.is_ingest:
            if self.external_id_field:
                body["externalIdFieldName"] = self.external_id_field
            if self.assignment_rule_id:
                body["assignmentRuleId"] = self.assignment_rule_id
        body.update({
            "concurrencyMode": self.concurrency_mode or "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
        })
        if full:
            body["jobType"] = self.job_type
        if self.is_ingest and self.state == OPEN:
            body["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
        body["lineEnding"] = self.line_ending
        body["columnDelimiter"] = self.column_delimiter
        if not self.is_ingest:
            body["query"] = self.query
        if full:
            body["numberRecordsProcessed"] = self.records_processed
            if self.is_ingest:
                body["numberRecordsFailed"] = self.records_failed
            body["retries"] = self.retries
            body["totalProcessingTime"] = self.processing_ms
            if self.is_ingest:
                body["apiActiveProcessingTime"] = self.api_active_ms
                body["apexProcessingTime"] = 0
            else:
                body["isPkChunkingSupported"] = False
            if self.error_message and self.state == FAILED:
                body["errorMessage"] = self.error_message
        return body


__all__ = ["ABORTED", "CLASSIC", "DELETED", "FAILED", "FINISHED", "INGEST", "INGEST_OPERATIONS", "IN_PROGRESS",
           "JOB_COMPLETE", "OPEN", "QUERY", "QUERY_OPERATIONS", "RUNNABLE", "UPLOAD_COMPLETE", "Job"]
