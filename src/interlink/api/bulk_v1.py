"""Bulk API 1.0 resources under ``/services/async/XX.X/`` (no ``v``), as simple-salesforce's ``sf.bulk``, the
platform's Data Loader and older ETL tools call them.

    POST job                                  create (jobInfo JSON or XML)                      201
    GET  job/{job}                            jobInfo with batch counts
    POST job/{job}                            {"state": "Closed" | "Aborted"}
    POST job/{job}/batch                      add a batch (JSON / CSV / XML records, or SOQL)   201
    GET  job/{job}/batch                      batchInfoList
    GET  job/{job}/batch/{batch}              batchInfo
    GET  job/{job}/batch/{batch}/request      the batch as sent
    GET  job/{job}/batch/{batch}/result       DML results, or a query batch's result ids
    GET  job/{job}/batch/{batch}/result/{id}  one query result file

Authentication is the ``X-SFDC-Session`` header (a ``Bearer`` token works too; any access token does, however it
was issued). Job and batch info come back in JSON for JSON jobs and XML otherwise; errors are the platform's
``{exceptionCode, exceptionMessage}`` (or ``<error>``), HTTP 400.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from interlink.api.app import bearer_token, supported_versions
from interlink.api.http import client_ip, require_api, unexpected_error_response
from interlink.errors import BulkJobError, InterlinkError, NotFoundError
from interlink.jobs.classic import NS, ClassicJobs
from interlink.jobs.model import QUERY_OPERATIONS, Job
from interlink.xmlsafe import check_untrusted_xml

if TYPE_CHECKING:
    from interlink.app.org import Org

_VERSION_RE = re.compile(r"^(\d{2,3}\.\d)$")
_EXCEPTION_CODES = {
    "INVALIDJOB": "InvalidJob", "INVALIDENTITY": "InvalidJob", "INVALIDJOBSTATE": "InvalidJobState",
    "INVALIDBATCH": "InvalidBatch", "CLIENTINPUTERROR": "ClientInputError", "EXCEEDEDQUOTA": "ExceededQuota",
    "REQUEST_LIMIT_EXCEEDED": "ExceededQuota", "INVALID_SESSION_ID": "InvalidSessionId", "NOT_FOUND": "InvalidUrl",
    "METHOD_NOT_ALLOWED": "InvalidUrl", "JSON_PARSER_ERROR": "ClientInputError",
    "EXCEEDED_MAX_SIZE_REQUEST": "ClientInputError", "REQUEST_TIMEOUT": "ClientInputError",
}
_TYPES = {"JSON": "application/json", "CSV": "text/csv", "XML": "application/xml"}


class _Call:
    """One Bulk API 1.0 request: who, which version, and which format answers it."""

    def __init__(self, org: Org, request: Request, body: bytes) -> None:
        self.org = org
        self.request = request
        self.body = body
        content_type = request.headers.get("content-type", "").lower()
        self.json = "json" in content_type
        self.context: Any = None

    def answer(self, element: str, body: dict[str, Any] | list[Any], *, status: int = 200,
               as_json: bool | None = None) -> Response:
        if self.json if as_json is None else as_json:
            return Response(orjson.dumps(body), status_code=status, media_type="application/json")
        return Response(_xml(element, body).encode(), status_code=status, media_type="application/xml")


def _xml(element: str, body: Any) -> str:
    def value(name: str, item: Any) -> str:
        if isinstance(item, dict):
            return f"<{name}>{''.join(value(k, v) for k, v in item.items())}</{name}>"
        if isinstance(item, list):
            return "".join(value(name, v) for v in item)
        text = ("true" if item else "false") if isinstance(item, bool) else str(item)
        return f"<{name}>{escape(text)}</{name}>"

    if isinstance(body, dict):
        inner = "".join(value(k, v) for k, v in body.items())
    else:
        inner = "".join(value("result", v) for v in body)
    return f'<?xml version="1.0" encoding="UTF-8"?><{element} xmlns="{NS}">{inner}</{element}>'


def _spec(call: _Call) -> dict[str, Any]:
    """The jobInfo a client sent, from JSON or XML."""
    if call.json:
        try:
            data = orjson.loads(call.body)
        except orjson.JSONDecodeError as exc:
            raise BulkJobError(f"Failed to parse the request: {exc}", error_code="CLIENTINPUTERROR") from None
        if not isinstance(data, dict):
            raise BulkJobError("The request must be a jobInfo object", error_code="CLIENTINPUTERROR")
        return data
    try:
        check_untrusted_xml(call.body)
        root = ET.fromstring(call.body)
    except (ValueError, ET.ParseError, ExpatError) as exc:
        raise BulkJobError(f"Failed to parse the request: {exc}", error_code="CLIENTINPUTERROR") from None
    return {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in root}


async def _route(call: _Call, classic: ClassicJobs, segments: list[str]) -> Response:
    method = call.request.method.upper()
    if segments == ["job"] and method == "POST":
        job = classic.create_job(call.context, _spec(call))
        return call.answer("jobInfo", classic.job_info(job), status=201)
    if len(segments) < 2 or segments[0] != "job":
        raise NotFoundError()
    job = classic.job(segments[1])
    as_json = job.content_type == "JSON"
    call.json = as_json  # from here on, errors too answer in the job's format
    rest = segments[2:]
    if not rest:
        if method == "GET":
            return call.answer("jobInfo", classic.job_info(job), as_json=as_json)
        if method == "POST":
            state = str(_spec(call).get("state") or "")
            return call.answer("jobInfo", classic.job_info(classic.set_state(job.id, state)), as_json=as_json)
    elif rest == ["batch"]:
        if method == "POST":
            batch = await run_in_threadpool(classic.add_batch, call.context, job.id, call.body)
            return call.answer("batchInfo", batch.info(), status=201, as_json=as_json)
        if method == "GET":
            infos = [b.info() for b in classic.batches(job.id)]
            return call.answer("batchInfoList", {"batchInfo": infos}, as_json=as_json)
    elif len(rest) >= 2 and rest[0] == "batch" and method == "GET":
        batch = classic.batch(job.id, rest[1])
        tail = rest[2:]
        if not tail:
            return call.answer("batchInfo", batch.info(), as_json=as_json)
        if tail == ["request"]:
            return _data(job, classic.request(job, batch))
        if tail == ["result"]:
            result = classic.result(job, batch)
            if isinstance(result, list):
                return call.answer("result-list", result, as_json=as_json)
            return _data(job, result)
        if len(tail) == 2 and tail[0] == "result":
            return _data(job, classic.query_result(job, batch, tail[1]))
    raise NotFoundError()


def _data(job: Job, data: bytes) -> Response:
    media = _TYPES.get(job.content_type or "XML", "application/xml")
    if job.operation in QUERY_OPERATIONS or media != "text/csv":
        return Response(data, media_type=media)
    return Response(data, media_type=f"{media}; charset=UTF-8")


def _error(call: _Call, error: InterlinkError) -> Response:
    return error_answer(call.request.headers.get("content-type", ""), error)


def error_answer(content_type: str, error: InterlinkError) -> Response:
    """``error`` as Bulk API 1.0 answers it: ``{exceptionCode, exceptionMessage}`` (XML unless the request is JSON)."""
    code = _EXCEPTION_CODES.get(error.error_code, "InvalidBatch" if error.http_status < 500 else "Unknown")
    body = {"exceptionCode": code, "exceptionMessage": error.message}
    status = 400 if error.http_status < 500 else 500
    if "json" in content_type.lower():
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")
    return Response(_xml("error", body).encode(), status_code=status, media_type="application/xml")


def routes() -> list[Route]:
    async def entry(request: Request) -> Response:
        org: Org = request.app.state.org
        call = _Call(org, request, b"")
        try:
            version = request.path_params["version"]
            if not _VERSION_RE.match(version) or version not in supported_versions(org):
                raise NotFoundError()
            session = org.tokens.validate(bearer_token(request), client_ip(request))
            org.usage.count()
            call.body = await request.body()  # only once the caller is known
            call.context = require_api(org.context_for(session.user_id, api_version=version,
                                                       app_id=session.app_id))
            segments = [s for s in request.path_params["rest"].split("/") if s]
            return await _route(call, org.classic, segments)
        except InterlinkError as error:
            return _error(call, error)
        except Exception as exc:
            return unexpected_error_response(exc)

    return [Route("/services/async/{version}/{rest:path}", entry, methods=["GET", "POST"])]


__all__ = ["error_answer", "routes"]
