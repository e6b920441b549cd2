"""REST resources under ``/services/data/vXX.X/``: the request object and the resource router.

Resources are matched on the *raw* path, segment by segment, because external-id values may carry
``%2F`` inside one segment (simple-salesforce quotes them with ``quote_plus``). Handlers receive an
:class:`ApiRequest`, which can also be built in-process, so composite and batch requests can call the
same handlers later without HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from starlette.responses import Response

from interlink.errors import MethodNotAllowed, NotFoundError

if TYPE_CHECKING:
    from interlink.app.org import Org
    from interlink.metadata.model import ObjectDef, Schema
    from interlink.records.context import Context
    from interlink.security.tokens import Session

VERSION_RE = re.compile(r"^v(\d{2,3}\.\d)$")


@dataclass
class ApiRequest:
    """One call to a REST resource, from HTTP or from a composite subrequest."""

    org: Org
    session: Session
    context: Context
    version: str
    method: str
    segments: list[str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""
    instance_url: str = ""
    params: dict[str, str] = field(default_factory=dict)
    dispatcher: Dispatcher | None = None  # runs subrequests in-process (composite, batch, graph)

    @property
    def base_path(self) -> str:
        return f"/services/data/v{self.version}"

    @property
    def pretty(self) -> bool:
        return self.headers.get("x-prettyprint", "") == "1"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def sobject(self, name: str | None = None) -> ObjectDef:
        """The object named in the path (or ``name``) as the caller sees it: without the fields they may not read.
        An object they may not read does not exist for them (NOT_FOUND), as on the platform."""
        obj = self.org.records.object(name or self.params["type"])
        access = self.context.enforced
        if access is None:
            return obj
        if not access.can(obj, "read"):
            raise NotFoundError()
        return access.object_view(obj)  # type: ignore[no-any-return]

    @property
    def schema(self) -> Schema:
        """The org's schema as the caller sees it (describe global, describe)."""
        return self.org.query.schema_for(self.context)


Handler = Callable[[ApiRequest], Awaitable[Response]]


class Dispatcher(Protocol):
    """Runs a REST call in-process for a parent request (implemented by the data API)."""

    async def call(self, parent: ApiRequest, method: str, url: str, body: Any = None,
                   headers: Mapping[str, str] | None = None) -> Any: ...


@dataclass
class _Route:
    pattern: tuple[str, ...]
    handlers: dict[str, Handler]


class ResourceRouter:
    """Maps ``segments`` (already split, still percent-encoded) and a method to a handler."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._by_length: dict[tuple[int, str], list[_Route]] = {}  # (segments, literal first segment)

    def add(self, pattern: str, methods: Mapping[str, Handler]) -> None:
        """``pattern`` like ``sobjects/{type}/{id}``; literal segments match case-insensitively."""
        segments = tuple(p for p in pattern.split("/") if p) if pattern else ()
        route = _Route(segments, {m.upper(): h for m, h in methods.items()})
        self._routes.append(route)
        first = segments[0].lower() if segments and not segments[0].startswith("{") else "*"
        self._by_length.setdefault((len(segments), first), []).append(route)

    def routes(self) -> list[tuple[str, list[str]]]:
        """Every resource as (pattern, its methods), in the order they were added."""
        return [("/".join(r.pattern), sorted(r.handlers)) for r in self._routes]

    @property
    def top_level(self) -> list[str]:
        return sorted({r.pattern[0] for r in self._routes if r.pattern and not r.pattern[0].startswith("{")})

    def resolve(self, segments: list[str], method: str) -> tuple[Handler, dict[str, str]]:
        head = unquote(segments[0]).lower() if segments else "*"
        candidates = [*self._by_length.get((len(segments), head), ()), *self._by_length.get((len(segments), "*"), ())]
        for route in candidates:
            params = _match(route.pattern, segments)
            if params is None:
                continue
            handler = route.handlers.get(method.upper())
            if handler is None and method.upper() == "HEAD":
                handler = route.handlers.get("GET")
            if handler is None:
                raise MethodNotAllowed(method.upper(), sorted(route.handlers))
            return handler, params
        raise NotFoundError()


def _match(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for expected, actual in zip(pattern, segments, strict=True):
        if expected[0] == "{":
            params[expected[1:-1]] = actual
        elif expected.lower() != (unquote(actual) if "%" in actual else actual).lower():
            return None
    return params


def split_path(raw_path: str) -> list[str]:
    """Split a raw path into segments, dropping one trailing slash (``sobjects/Account/`` = ``…/Account``)."""
    return [s for s in raw_path.split("/") if s != ""]
