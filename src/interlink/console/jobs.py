"""The console's Jobs section: Bulk API jobs, asynchronous callouts and outbound messages.

Every action goes through the service the APIs use: job info and results come from
:class:`interlink.jobs.bulk.BulkJobs` (and :class:`interlink.jobs.classic.ClassicJobs` for Bulk API 1.0), so a
download here is byte for byte what ``GET .../successfulResults`` answers; Abort is the same state change as
``PATCH {"state": "Aborted"}``. Callouts and notifications are read, retried and discarded through their queues.
The list page polls ``/console/api/jobs`` while anything runs and updates itself.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from interlink.callouts.credentials import CalloutRefused
from interlink.console.render import api, json_response, org_of, page, render
from interlink.console.session import ConsoleUser
from interlink.errors import InvalidJobState, NotFoundError
from interlink.jobs import classic as classic_jobs
from interlink.jobs.model import (
    ABORTED,
    CLASSIC,
    FINISHED,
    INGEST,
    JOB_COMPLETE,
    QUERY,
    QUERY_OPERATIONS,
    RUNNABLE,
    Job,
)

SECTION = "/console/jobs"
LIST_LIMIT = 50
_TYPE_LABELS = {INGEST: "Ingest (2.0)", QUERY: "Query (2.0)", CLASSIC: "Bulk 1.0"}
_INGEST_RESULTS = {"success": "successful", "failure": "failed", "unprocessed": "unprocessed"}
_INGEST_LABELS = {"success": "Successful", "failure": "Failed", "unprocessed": "Unprocessed"}
_CLASSIC_TYPES = {"JSON": ("application/json", "json"), "CSV": ("text/csv; charset=UTF-8", "csv"),
                  "XML": ("application/xml", "xml")}
# Fixed messages shown after an action (the query string only chooses one; it never reaches the page itself).
FLASHES = {
    "aborted": ("ok", "The job was aborted."),
    "retried": ("ok", "Queued to be sent now."),
    "discarded": ("ok", "Discarded: it will not be sent again."),
    "not-retried": ("bad", "It could not be sent again: it is delivered, discarded or being sent right now."),
    "not-discarded": ("bad", "It could not be discarded: it is delivered, discarded or being sent right now."),
}


def flash(request: Request) -> tuple[str, str] | None:
    return FLASHES.get(request.query_params.get("flash", ""))


# -- Bulk jobs ---------------------------------------------------------------------------------------------------


def bulk_summary(org: Any, job: Job) -> dict[str, Any]:
    """A job as the console lists it: counters, progress (0..1, None while unknown) and what can be done."""
    batches: dict[str, int] = {}
    if job.job_type == CLASSIC:
        info = org.classic.job_info(job)
        batches = {"queued": info["numberBatchesQueued"], "inProgress": info["numberBatchesInProgress"],
                   "completed": info["numberBatchesCompleted"], "failed": info["numberBatchesFailed"],
                   "total": info["numberBatchesTotal"]}
        settled = batches["total"] - batches["queued"] - batches["inProgress"]
        active = job.state in (classic_jobs.OPEN, classic_jobs.CLOSED) and \
            (batches["queued"] + batches["inProgress"]) > 0
        progress: float | None = settled / batches["total"] if batches["total"] else None
        can_abort = job.state in (classic_jobs.OPEN, classic_jobs.CLOSED)
    else:
        active = job.state in RUNNABLE
        can_abort = job.state not in FINISHED
        if job.state == JOB_COMPLETE:
            progress = 1.0
        elif job.job_type == INGEST and job.records_uploaded:
            progress = min(job.records_processed / job.records_uploaded, 1.0)
        elif job.job_type == QUERY and active:
            progress = None  # how many records a query finds is known when it is done
        else:
            progress = 0.0
    return {
        "id": job.id, "jobType": job.job_type, "type": _TYPE_LABELS.get(job.job_type, job.job_type),
        "operation": job.operation, "object": job.object, "state": job.state,
        "createdDate": job.created_date.strftime("%Y-%m-%d %H:%M:%S"),
        "recordsUploaded": job.records_uploaded, "recordsProcessed": job.records_processed,
        "recordsFailed": job.records_failed if job.job_type != QUERY else None,
        "progress": progress, "percent": None if progress is None else round(progress * 100),
        "active": active, "canAbort": can_abort, "batches": batches,
        "error": job.error_message if job.state == "Failed" else None,
        "downloads": _downloads(job),
    }


def _downloads(job: Job) -> list[dict[str, str]]:
    base = f"/console/jobs/bulk/{job.id}/results"
    if job.job_type == INGEST and job.state in FINISHED:
        return [{"label": label, "kind": kind, "url": f"{base}/{kind}"} for kind, label in _INGEST_LABELS.items()]
    if job.job_type == QUERY and job.state == JOB_COMPLETE:
        return [{"label": "Results", "kind": "query", "url": f"{base}/query"}]
    return []


def _jobs_data(org: Any) -> dict[str, Any]:
    bulk = [bulk_summary(org, job) for job in org.bulk.recent(LIST_LIMIT)]
    callouts = org.callouts.list(limit=LIST_LIMIT)
    outbound = org.outbound.list(limit=LIST_LIMIT)
    for item in (*callouts, *outbound):
        item.pop("history", None)
    # What the page shows beyond the counters: when it changes, the page reloads rather than patch every table.
    shape = [[job["id"], job["state"], job["active"]] for job in bulk] + \
        [[item["id"], item["state"], item["attempts"]] for item in (*callouts, *outbound)]
    return {"bulk": bulk, "callouts": callouts, "outbound": outbound,
            "active": any(job["active"] for job in bulk)
            or any(item["state"] == "Queued" for item in (*callouts, *outbound)),
            "signature": hashlib.sha1(orjson.dumps(shape)).hexdigest()[:16]}


@page
async def jobs_page(request: Request, user: ConsoleUser) -> Response:
    data = _jobs_data(org_of(request))
    return render(request, "jobs.html", user, section=SECTION, flash=flash(request), **data)


@api
async def jobs_json(request: Request, user: ConsoleUser) -> Response:
    return json_response(_jobs_data(org_of(request)))


@api
async def bulk_job_json(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    return json_response(bulk_summary(org, _job(org, request.path_params["job_id"])))


def _job(org: Any, job_id: str) -> Job:
    return org.bulk.get(job_id)  # type: ignore[no-any-return]


@page
async def bulk_job_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    job = _job(org, request.path_params["job_id"])
    summary = bulk_summary(org, job)
    batches = []
    if job.job_type == CLASSIC:
        batches = [_classic_batch(org.classic, job, batch) for batch in org.classic.batches(job.id)]
    wire = org.classic.job_info(job) if job.job_type == CLASSIC else job.to_wire()
    return render(request, "job_bulk.html", user, section=SECTION, job=summary, info=wire, batches=batches,
                  query=job.query or "", flash=flash(request))


def _classic_batch(classic: Any, job: Job, batch: Any) -> dict[str, Any]:
    downloads: list[dict[str, str]] = []
    base = f"/console/jobs/bulk/{job.id}/batches/{batch.id}"
    downloads.append({"label": "Request", "url": f"{base}/request"})
    if batch.state == classic_jobs.COMPLETED:
        if job.operation in QUERY_OPERATIONS:
            downloads += [{"label": f"Result {number}", "url": f"{base}/result/{result_id}"}
                          for number, result_id in enumerate(classic.result_ids(job, batch), 1)]
        else:
            downloads.append({"label": "Results", "url": f"{base}/result"})
    return {**batch.info(), "downloads": downloads}


def _attachment(chunks: Iterator[bytes] | bytes, media_type: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(chunks, bytes):
        return Response(chunks, media_type=media_type, headers=headers)
    return StreamingResponse(chunks, media_type=media_type, headers=headers)


@page
async def bulk_results(request: Request, user: ConsoleUser) -> Response:
    """A result file of a Bulk API 2.0 job, from the code that serves the Bulk API's result resources."""
    org = org_of(request)
    job = _job(org, request.path_params["job_id"])
    kind = request.path_params["kind"]
    if job.job_type == INGEST and kind in _INGEST_RESULTS:
        return _attachment(org.bulk.ingest_results(job.id, kind), "text/csv; charset=UTF-8",
                           f"{job.id}-{_INGEST_RESULTS[kind]}.csv")
    if job.job_type == QUERY and kind == "query":
        result = org.bulk.query_results(job.id, job.api_version, locator=None,
                                        max_records=max(job.records_processed, 1))
        return _attachment(result.chunks, "text/csv; charset=UTF-8", f"{job.id}-results.csv")
    raise NotFoundError()


@page
async def classic_batch_data(request: Request, user: ConsoleUser) -> Response:
    """A Bulk API 1.0 batch's request, results or one query result file, as ``/services/async`` serves them."""
    org = org_of(request)
    job = _job(org, request.path_params["job_id"])
    if job.job_type != CLASSIC:
        raise NotFoundError()
    batch = org.classic.batch(job.id, request.path_params["batch_id"])
    media, extension = _CLASSIC_TYPES.get(job.content_type or "XML", _CLASSIC_TYPES["XML"])
    what = request.path_params["what"]
    result_id = request.path_params.get("result_id")
    if what == "request" and result_id is None:
        data = org.classic.request(job, batch)
    elif what == "result" and result_id is None and job.operation not in QUERY_OPERATIONS:
        data = org.classic.result(job, batch)
    elif what == "result" and result_id is not None:
        data = org.classic.query_result(job, batch, result_id)
    else:
        raise NotFoundError()
    name = f"{batch.id}-{what}{'-' + result_id if result_id else ''}.{extension}"
    return _attachment(bytes(data), media, name)


@page
async def bulk_abort(request: Request, user: ConsoleUser) -> Response:
    """Abort an open or running job, as ``PATCH {"state": "Aborted"}`` (or ``Aborted`` on a 1.0 job) does."""
    org = org_of(request)
    job = _job(org, request.path_params["job_id"])
    if job.job_type == CLASSIC:
        org.classic.set_state(job.id, classic_jobs.ABORTED)
    elif job.job_type in (INGEST, QUERY):
        org.bulk.set_state(user.context, job.id, job.job_type, ABORTED)
    else:
        raise InvalidJobState(f"Job {job.id} cannot be aborted")
    return RedirectResponse(f"/console/jobs/bulk/{job.id}?flash=aborted", 303)


# -- callouts and outbound messages ------------------------------------------------------------------------------


@page
async def callout_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    callout_id = request.path_params["callout_id"]
    found = org.callouts.get(callout_id)
    if found is None:
        raise NotFoundError()
    return render(request, "job_callout.html", user, section=SECTION, kind="callout", item=found,
                  sent=org.callouts.request(callout_id), definition=None, flash=flash(request),
                  base=f"/console/jobs/callouts/{found['id']}")


@page
async def outbound_page(request: Request, user: ConsoleUser) -> Response:
    org = org_of(request)
    found = org.outbound.get(request.path_params["notification_id"])
    if found is None:
        raise NotFoundError()
    definition = org.outbound.definitions.get(found["definition"].lower())
    sent = None
    if definition is not None:
        named = org.callouts.credentials.get(definition.credential.lower())
        url = f"callout:{definition.credential}{definition.path}"
        if named is not None:
            with contextlib.suppress(CalloutRefused):
                url = named.endpoint(definition.path)
        sent = {"method": "POST", "url": url, "fields": list(definition.fields)}
    return render(request, "job_callout.html", user, section=SECTION, kind="outbound", item=found, sent=sent,
                  definition=definition, flash=flash(request), base=f"/console/jobs/outbound/{found['id']}")


def _queue_action(kind: str, action: str):  # type: ignore[no-untyped-def]
    @page
    async def endpoint(request: Request, user: ConsoleUser) -> Response:
        org = org_of(request)
        queue = org.callouts if kind == "callouts" else org.outbound
        item_id = request.path_params["item_id"]
        if queue.get(item_id) is None:
            raise NotFoundError()
        if action == "retry":
            done = queue.retry_now(item_id) if kind == "callouts" else queue.retry(item_id)
            outcome = "retried" if done else "not-retried"
        else:
            outcome = "discarded" if queue.discard(item_id) else "not-discarded"
        return RedirectResponse(f"/console/jobs/{kind}/{item_id}?flash={outcome}", 303)

    endpoint.__name__ = f"{kind}_{action}"
    return endpoint


def routes() -> list[BaseRoute]:
    get = ["GET", "HEAD"]
    return [
        Route("/jobs", jobs_page, methods=get),
        Route("/api/jobs", jobs_json, methods=["GET"]),
        Route("/api/jobs/bulk/{job_id}", bulk_job_json, methods=["GET"]),
        Route("/jobs/bulk/{job_id}", bulk_job_page, methods=get),
        Route("/jobs/bulk/{job_id}/results/{kind}", bulk_results, methods=get),
        Route("/jobs/bulk/{job_id}/batches/{batch_id}/{what}", classic_batch_data, methods=get),
        Route("/jobs/bulk/{job_id}/batches/{batch_id}/{what}/{result_id}", classic_batch_data, methods=get),
        Route("/jobs/bulk/{job_id}/abort", bulk_abort, methods=["POST"]),
        Route("/jobs/callouts/{callout_id}", callout_page, methods=get),
        Route("/jobs/outbound/{notification_id}", outbound_page, methods=get),
        *(Route(f"/jobs/{kind}/{{item_id}}/{action}", _queue_action(kind, action), methods=["POST"])
          for kind in ("callouts", "outbound") for action in ("retry", "discard")),
    ]
