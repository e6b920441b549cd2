"""Bulk API 2.0 resources under ``/services/data/vXX.X/jobs/``.

    POST   jobs/ingest                           create (JSON, or multipart ``job`` + ``content`` up to 100,000 chars)
    GET    jobs/ingest[?queryLocator=…]          list
    GET    jobs/ingest/{id}                      job info
    PATCH  jobs/ingest/{id}                      {"state": "UploadComplete" | "Aborted"}
    DELETE jobs/ingest/{id}                      delete a finished job (204)
    PUT    jobs/ingest/{id}/batches              upload CSV (201, empty body)
    GET    jobs/ingest/{id}/successfulResults | failedResults | unprocessedrecords      CSV
    POST   jobs/query                            create a query job (JSON back, whatever Accept says)
    GET    jobs/query[?queryLocator=…], jobs/query/{id}, PATCH (Aborted), DELETE
    GET    jobs/query/{id}/results[?locator=&maxRecords=]  CSV page + Sforce-NumberOfRecords, Sforce-Locator
    GET    jobs/query/{id}/resultPages[?maxRecords=&locator=]  up to five result links at once

Thin: :class:`interlink.jobs.bulk.BulkJobs` does the work; uploads are checked off the event loop.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from interlink.api.http import json_response, no_content, parse_json_object
from interlink.api.resources import ApiRequest, ResourceRouter
from interlink.errors import BulkJobError, ClientInputError, InvalidHeaderError
from interlink.jobs.model import INGEST, QUERY, UPLOAD_COMPLETE

CSV_TYPE = "text/csv; charset=UTF-8"
MULTIPART_CONTENT_LIMIT = 100_000  # characters of CSV a multipart create may carry


def _job_type(request: ApiRequest) -> str:
    return INGEST if request.segments[1].lower() == "ingest" else QUERY


async def create_ingest(request: ApiRequest) -> Response:
    content_type = request.header("content-type") or ""
    bulk = request.org.bulk
    if content_type.lower().startswith("multipart/"):
        spec, content = _multipart(content_type, request.body)
        job = bulk.create_ingest(request.context, spec)
        await run_in_threadpool(bulk.upload, request.context, job.id, content)
        job = bulk.set_state(request.context, job.id, INGEST, UPLOAD_COMPLETE)
        return json_response(job.to_wire(full=False), pretty=request.pretty)
    job = bulk.create_ingest(request.context, parse_json_object(request.body))
    return json_response(job.to_wire(full=False), pretty=request.pretty)


async def create_query(request: ApiRequest) -> Response:
    job = request.org.bulk.create_query(request.context, parse_json_object(request.body))
    return json_response(job.to_wire(full=False), pretty=request.pretty)


async def list_jobs(request: ApiRequest) -> Response:
    job_type = _job_type(request)
    filters = {k: v for k, v in request.query.items() if k in ("concurrencyMode", "isPkChunkingEnabled", "jobType")}
    if "jobType" in filters and filters.pop("jobType") != job_type:
        return json_response({"done": True, "records": [], "nextRecordsUrl": None}, pretty=request.pretty)
    jobs, after = request.org.bulk.list(job_type, after=request.query.get("queryLocator"), filters=filters)
    resource = "ingest" if job_type == INGEST else "query"
    next_url = f"{request.base_path}/jobs/{resource}?queryLocator={after}" if after else None
    return json_response({"done": after is None, "records": [job.to_wire() for job in jobs],
                          "nextRecordsUrl": next_url}, pretty=request.pretty)


async def job_info(request: ApiRequest) -> Response:
    job = request.org.bulk.get(request.params["job"], _job_type(request))
    return json_response(job.to_wire(), pretty=request.pretty)


async def set_state(request: ApiRequest) -> Response:
    body = parse_json_object(request.body)
    job = request.org.bulk.set_state(request.context, request.params["job"], _job_type(request), body.get("state"))
    return json_response(job.to_wire(full=False), pretty=request.pretty)


async def delete_job(request: ApiRequest) -> Response:
    request.org.bulk.delete(request.params["job"], _job_type(request))
    return no_content()


async def upload(request: ApiRequest) -> Response:
    await run_in_threadpool(request.org.bulk.upload, request.context, request.params["job"], request.body)
    return Response(status_code=201)


def _csv(chunks: Any, headers: dict[str, str] | None = None) -> Response:
    return StreamingResponse(chunks, media_type=CSV_TYPE, headers=headers)


async def successful_results(request: ApiRequest) -> Response:
    return _csv(request.org.bulk.ingest_results(request.params["job"], "success"))


async def failed_results(request: ApiRequest) -> Response:
    return _csv(request.org.bulk.ingest_results(request.params["job"], "failure"))


async def unprocessed_records(request: ApiRequest) -> Response:
    return _csv(request.org.bulk.ingest_results(request.params["job"], "unprocessed"))


def _max_records(request: ApiRequest) -> int | None:
    raw = request.query.get("maxRecords")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidHeaderError(f"maxRecords must be a positive whole number, not {raw!r}", ["maxRecords"])
    return value


async def query_results(request: ApiRequest) -> Response:
    page = request.org.bulk.query_results(request.params["job"], request.version, locator=request.query.get("locator"),
                                          max_records=_max_records(request))
    return _csv(page.chunks, {"Sforce-NumberOfRecords": str(page.records),
                              "Sforce-Locator": page.next_locator or "null"})


async def result_pages(request: ApiRequest) -> Response:
    size = _max_records(request)
    locators, following = request.org.bulk.result_pages(request.params["job"], request.version, max_records=size,
                                                        locator=request.query.get("locator"))
    base = f"{request.base_path}/jobs/query/{request.params['job']}"
    suffix = f"&maxRecords={size}" if size else ""
    body = {
        "resultPages": [{"resultUrl": f"{base}/results?locator={locator}{suffix}"} for locator in locators],
        "nextRecordsUrl": f"{base}/resultPages?locator={following}{suffix}" if following else None,
        "done": following is None,
    }
    return json_response(body, pretty=request.pretty)


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """The ``job`` JSON and ``content`` CSV parts of a multipart create request."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)
    spec: dict[str, Any] | None = None
    content: bytes | None = None
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if name == "job":
                spec = parse_json_object(payload)  # type: ignore[arg-type]
            elif name == "content":
                content = payload  # type: ignore[assignment]
    if spec is None or content is None:
        raise BulkJobError("A multipart job request needs a 'job' part (JSON) and a 'content' part (CSV)",
                           error_code="INVALIDJOB")
    if len(content.decode("utf-8", "replace")) > MULTIPART_CONTENT_LIMIT:
        raise ClientInputError(f"A multipart job request can carry at most {MULTIPART_CONTENT_LIMIT} characters of "
                               "data; upload larger data with PUT .../batches")
    return spec, content


def register(router: ResourceRouter) -> None:
    for resource, create in (("ingest", create_ingest), ("query", create_query)):
        router.add(f"jobs/{resource}", {"POST": create, "GET": list_jobs})
        router.add(f"jobs/{resource}/{{job}}", {"GET": job_info, "PATCH": set_state, "DELETE": delete_job})
    router.add("jobs/ingest/{job}/batches", {"PUT": upload})
    router.add("jobs/ingest/{job}/successfulResults", {"GET": successful_results})
    router.add("jobs/ingest/{job}/failedResults", {"GET": failed_results})
    router.add("jobs/ingest/{job}/unprocessedrecords", {"GET": unprocessed_records})
    router.add("jobs/query/{job}/results", {"GET": query_results})
    router.add("jobs/query/{job}/resultPages", {"GET": result_pages})
