"""The HTTP client external data sources share: base URL, auth through named credentials, limits and failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import certifi
import httpx
import pytest

from interlink.callouts.credentials import NamedCredential
from interlink.connect.base import DataSource
from interlink.connect.http import SourceHttp, encode_query
from interlink.errors import ConfigurationError, ExternalObjectError

BASE = "https://erp.example.com/odata/"


class Remote:
    """A scripted HTTP service: records requests, answers with ``answer(request)``."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or (lambda request: httpx.Response(200, json={"value": []}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def urls(self) -> list[str]:
        return [str(request.url) for request in self.requests]


def make(remote: Remote, credential: NamedCredential | None = None, max_response_bytes: int = 8 * 1024 * 1024,
         **source: Any) -> SourceHttp:
    settings: dict[str, Any] = {"url": BASE, **source}
    return SourceHttp(DataSource("ERP", "odata4", **settings), credential, transport=httpx.MockTransport(remote),
                      max_response_bytes=max_response_bytes)


def test_paths_resolve_under_the_base_url_with_odata_style_query_encoding() -> None:
    remote = Remote()
    http = make(remote)
    status, headers, body = http.get("Orders", {"$filter": "Name eq 'A&B + C'", "$select": "A,B", "$top": 5})
    assert (status, body) == (200, b'{"value":[]}')
    assert headers["content-type"] == "application/json"
    # "$" stays literal in option names, spaces are %20 (OData reads "+" as a plus sign), "&" and "+" are escaped.
    assert remote.urls == [f"{BASE}Orders?$filter=Name%20eq%20'A%26B%20%2B%20C'&$select=A,B&$top=5"]
    http.get("/$metadata")
    assert remote.urls[-1] == f"{BASE}$metadata"
    http.get("Orders('a:b')")  # a colon inside a key is still a path under the base
    assert remote.urls[-1] == f"{BASE}Orders('a:b')"


def test_encode_query_keeps_odata_punctuation_readable() -> None:
    assert encode_query({"$orderby": "Date desc,Id", "$filter": "d lt 2025-01-31T10:00:00+01:00"}) == \
        "$orderby=Date%20desc,Id&$filter=d%20lt%202025-01-31T10:00:00%2B01:00"


def test_a_next_link_under_the_base_url_is_followed_as_is() -> None:
    remote = Remote()
    http = make(remote)
    link = f"{BASE}Orders?$skiptoken=abc%20def&$top=2"
    http.get(link)
    assert remote.urls == [link]
    http.get("https://ERP.example.com:443/odata/Orders?$skiptoken=2")  # same origin, spelled differently
    assert len(remote.requests) == 2


@pytest.mark.parametrize("url", [
    "https://evil.example.com/odata/Orders?$skiptoken=1",      # another host
    "http://erp.example.com/odata/Orders",                     # another scheme
    "https://erp.example.com:8443/odata/Orders",               # another port
    "https://erp.example.com/admin/users",                     # outside the path prefix
    "https://erp.example.com/odatax/Orders",                   # a prefix of the name is not the path prefix
    "https://erp.example.com@evil.example.com/odata/Orders",   # userinfo trick
    "https://erp.example.com/odata/%2e%2e/admin",              # encoded dot segment
    "//evil.example.com/odata/Orders",                         # scheme-relative
    "../admin",                                                # relative escape
    "file:///etc/passwd",                                      # another kind of URL
    "mailto:ops@example.com",
])
def test_urls_outside_the_base_url_are_refused_without_a_request(url: str) -> None:
    remote = Remote()
    with pytest.raises(ExternalObjectError, match=r"^ERP: refused to call .* not under the data source's URL"):
        make(remote).get(url)
    assert remote.requests == []


def test_an_answer_over_8_mb_is_refused() -> None:
    big = b"x" * (8 * 1024 * 1024 + 1)
    http = make(Remote(lambda request: httpx.Response(200, content=big)))
    with pytest.raises(ExternalObjectError, match=r"^ERP: the response from https://erp\.example\.com/odata/Orders "
                                                  r"exceeds 8 MB"):
        http.get("Orders")


def test_a_streamed_answer_is_counted_as_it_arrives() -> None:
    def chunks() -> Iterator[bytes]:
        yield from (b"y" * 400 for _ in range(10))  # no Content-Length: chunked

    http = make(Remote(lambda request: httpx.Response(200, content=chunks())), max_response_bytes=1000)
    with pytest.raises(ExternalObjectError, match=r"exceeds 1000 bytes"):
        http.get("Orders")
    small = make(Remote(lambda request: httpx.Response(200, content=b"z" * 1000)), max_response_bytes=1000)
    assert small.get("Orders")[2] == b"z" * 1000


def test_a_timeout_names_the_source_and_its_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    http = make(Remote(slow), timeout=5)
    with pytest.raises(ExternalObjectError) as caught:
        http.get("Orders", {"$top": 1})
    assert caught.value.message == f"ERP: no answer within 5 s from {BASE}Orders?$top=1 (the data source's timeout)"
    assert caught.value.error_code == "EXTERNAL_OBJECT_EXCEPTION"


def test_a_connection_failure_names_the_source() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(ExternalObjectError, match=r"^ERP: cannot reach https://erp\.example\.com/odata/Orders: "
                                                  r"ConnectError: \[Errno 111\] Connection refused"):
        make(Remote(down)).get("Orders")


def test_the_timeout_is_the_sources_capped_at_120_seconds() -> None:
    assert make(Remote(), timeout=500).timeout == 120
    assert make(Remote(), timeout=12.5).timeout == 12.5


def test_writes_send_their_method_body_and_headers() -> None:
    remote = Remote(lambda request: httpx.Response(201 if request.method == "POST" else 204))
    http = make(remote)
    assert http.post("Orders", b'{"a":1}', headers={"Content-Type": "application/json"})[0] == 201
    assert http.patch("Orders('SO-1')", b'{"a":2}')[0] == 204
    assert http.delete("Orders('SO-1')")[0] == 204
    assert [(r.method, str(r.url), r.content) for r in remote.requests] == [
        ("POST", f"{BASE}Orders", b'{"a":1}'), ("PATCH", f"{BASE}Orders('SO-1')", b'{"a":2}'),
        ("DELETE", f"{BASE}Orders('SO-1')", b"")]
    assert remote.requests[0].headers["Content-Type"] == "application/json"


def test_without_a_named_credential_no_auth_is_sent_and_a_401_is_not_retried() -> None:
    remote = Remote(lambda request: httpx.Response(401))
    assert make(remote).get("Orders")[0] == 401
    assert len(remote.requests) == 1
    assert "authorization" not in remote.requests[0].headers


def test_a_named_credential_gives_the_base_url_and_the_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_TOKEN", "t0ken")
    credential = NamedCredential("ErpApi", "https://erp.example.com/api", protocol="bearer",
                                 settings={"token": "${ERP_TOKEN}"}, secret_headers=("Authorization",))
    remote = Remote()
    http = make(remote, credential, url="callout:ErpApi/odata/v4")
    http.get("Orders")
    assert remote.urls == ["https://erp.example.com/api/odata/v4/Orders"]
    assert remote.requests[0].headers["Authorization"] == "Bearer t0ken"
    for url in ("odata/v4", "/odata/v4/", "https://erp.example.com/api/odata/v4"):
        assert make(remote, credential, url=url).base_url == "https://erp.example.com/api/odata/v4/"
    assert make(remote, credential, url="").base_url == "https://erp.example.com/api/"
    # connect.sources hands over a credential whose URL already is the source's: the path is not added twice.
    combined = NamedCredential("ErpApi", "https://erp.example.com/api/odata/v4", protocol="bearer",
                               settings={"token": "${ERP_TOKEN}"})
    assert make(remote, combined, url="callout:ErpApi/odata/v4").base_url == "https://erp.example.com/api/odata/v4/"
    with pytest.raises(ExternalObjectError, match=r"not under"):
        make(remote, credential, url="odata/v4").get("https://erp.example.com/api/other")


def test_a_source_url_outside_its_credential_is_a_configuration_error() -> None:
    credential = NamedCredential("ErpApi", "https://erp.example.com/api")
    with pytest.raises(ConfigurationError, match=r"^ERP: "):
        make(Remote(), credential, url="https://evil.example.com/api/odata")
    with pytest.raises(ConfigurationError, match=r"^ERP: "):
        make(Remote(), credential, url="../../admin")
    with pytest.raises(ConfigurationError, match=r"^ERP: url: an http"):
        make(Remote(), url="erp.example.com/odata")


def test_a_401_drops_the_cached_token_and_retries_once(monkeypatch: pytest.MonkeyPatch) -> None:
    issued: list[str] = []

    def token_endpoint(url: str, **kwargs: Any) -> httpx.Response:
        issued.append(f"tok-{len(issued) + 1}")
        return httpx.Response(200, json={"access_token": issued[-1], "expires_in": 3600},
                              request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", token_endpoint)
    credential = NamedCredential("ErpOAuth401", "https://erp.example.com/odata", protocol="oauth_client_credentials",
                                 settings={"tokenUrl": "https://login.example.com/token", "clientId": "c",
                                           "clientSecret": "s"})
    remote = Remote(lambda request: httpx.Response(
        401 if request.headers["Authorization"] == "Bearer tok-1" else 200, json={"value": []}))
    try:
        http = make(remote, credential, url="")
        assert http.get("Orders")[0] == 200
        assert http.get("Orders")[0] == 200  # the new token is kept
        assert issued == ["tok-1", "tok-2"]
        assert [r.headers["Authorization"] for r in remote.requests] == ["Bearer tok-1", "Bearer tok-2",
                                                                         "Bearer tok-2"]
        remote.answer = lambda request: httpx.Response(401)
        assert http.get("Orders")[0] == 401  # still refused after one retry: the caller sees the 401
        assert len(remote.requests) == 5
    finally:
        credential.forget_token()


def test_a_ca_bundle_option_is_used_and_a_bad_one_is_a_clear_error() -> None:
    SourceHttp(DataSource("ERP", "odata4", url=BASE, options={"caBundle": certifi.where()})).close()
    with pytest.raises(ConfigurationError, match=r"^ERP: cannot use caBundle /nonexistent/ca\.pem"):
        SourceHttp(DataSource("ERP", "odata4", url=BASE, options={"caBundle": "/nonexistent/ca.pem"}))
