"""A small client for an org's wire APIs (REST and Bulk API 2.0), for CLI commands that act as clients.

``interlink data`` talks to an org only through its HTTP APIs, like any external tool, so it works the same
against the local org and a production one. :func:`resolve_target` finds the org (flags, or the local org's
running server with a freshly minted token); :class:`OrgClient` makes the calls and turns error bodies into
:class:`ApiError`; :func:`reported` turns those and network failures into messages and exit code 1.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from interlink.cli.main import _err

if TYPE_CHECKING:
    import ssl

    import httpx

FINISHED = ("JobComplete", "Failed", "Aborted")
POLL_FIRST, POLL_MAX = 0.2, 5.0  # seconds between job polls: quick for small jobs, gentle for long ones


class ApiError(Exception):
    """The org refused a call: its errors as ``errorCode: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def config_error(message: str) -> Exception:
    from interlink.errors import ConfigurationError

    return ConfigurationError(message)


# -- the target org ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the loader sends its calls, and how it trusts the server."""

    url: str
    token: str
    api_version: str
    verify: ssl.SSLContext


def _api_version(raw: str) -> str:
    text = raw.strip().lower().removeprefix("v")
    try:
        number = float(text)
    except ValueError:
        number = 0.0
    if number < 1 or not text.replace(".", "", 1).isdigit():
        raise config_error(f"--api-version takes a version such as 66.0, not {raw!r}")
    return f"{number:.1f}"


def _trust(bundle: Path | None) -> ssl.SSLContext:
    """An SSL context trusting ``bundle`` alone, or the system's CAs (certifi's when the system has none)."""
    import ssl

    if bundle is not None:
        try:
            return ssl.create_default_context(cafile=str(bundle))
        except (OSError, ssl.SSLError) as exc:
            raise config_error(f"cannot use the CA bundle {bundle}: {exc}") from None
    context = ssl.create_default_context()
    if not context.cert_store_stats().get("x509_ca"):  # e.g. python.org builds on macOS ship no system roots
        with contextlib.suppress(ImportError):
            import certifi

            context.load_verify_locations(certifi.where())
    return context


def _server_running(pid: object) -> bool:
    """Whether the process ``interlink up`` recorded is alive (a stale server.json points at nothing)."""
    if os.name != "posix" or not isinstance(pid, int):
        return True  # os.kill(pid, 0) would terminate the process on Windows: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_target(instance_url: str | None, token: str | None, api_version: str, ca_bundle: Path | None,
            data_dir: Path | None, store: str | None, user: str) -> Target:
    """The org named by the flags, or the local org's running server with a token minted for ``user``."""
    import json

    version = _api_version(api_version)
    if instance_url or token:
        if not (instance_url and token):
            raise config_error("give both --instance-url and --token (or neither, for the local org)")
        url = instance_url.strip().rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise config_error(f"--instance-url must be an https:// (or http://) URL, not {instance_url!r}")
        return Target(url, token.strip(), version, _trust(ca_bundle))

    from interlink.cli.main import _existing_org, _settings

    settings = _settings(data_dir=data_dir, store=store)
    # `interlink up` writes run/server.json (interlink.app.server); it is read here directly so the CLI does
    # not import the server stack.
    try:
        info = json.loads((settings.data_dir / "run" / "server.json").read_text())
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict) or not info.get("url") or not _server_running(info.get("pid")):
        raise config_error(f"no server is running for {settings.data_dir.resolve()}: start one with `interlink up` "
                            "(or pass --data-dir, or --instance-url and --token)")
    with _existing_org(data_dir, store) as org:
        minted = org.mint_token(user)
    bundle = ca_bundle
    if bundle is None:
        recorded = Path(str(info.get("ca_bundle") or ""))
        if recorded.is_file():
            bundle = recorded
        else:
            from interlink.security.tls import ensure_tls

            bundle = ensure_tls(settings.data_dir).bundle  # system roots + the local CA
    return Target(str(info["url"]).rstrip("/"), minted, version, _trust(bundle))


class OrgClient:
    """The REST and Bulk API 2.0 calls the loader makes: one httpx client with the bearer token."""

    def __init__(self, target: Target) -> None:
        import httpx

        self.target = target
        self.http = httpx.Client(
            base_url=f"{target.url}/services/data/v{target.api_version}/", verify=target.verify,
            headers={"Authorization": f"Bearer {target.token}", "Accept": "application/json"},
            timeout=httpx.Timeout(300.0, connect=15.0))  # a 100 MB upload or a big collections call takes time

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; a 4xx/5xx answer raises :class:`ApiError` with the org's errors."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(_problems(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request and parse its JSON answer (an answer that is not JSON is an :class:`ApiError`)."""
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError([f"UNEXPECTED_RESPONSE: {method} {path} answered {response.status_code} without JSON "
                            f"(is {self.target.url} an org?)"]) from None

    @contextlib.contextmanager
    def stream(self, path: str, params: dict[str, str]) -> Iterator[httpx.Response]:
        """GET ``path`` without reading the body into memory."""
        with self.http.stream("GET", path, params=params, headers={"Accept": "text/csv"}) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(_problems(response))
            yield response

    def abort(self, kind: str, job_id: str) -> None:
        """Best effort: abort a job this run gives up on, so it does not linger Open or keep running."""
        import httpx

        with contextlib.suppress(ApiError, httpx.HTTPError):
            self.call("PATCH", f"jobs/{kind}/{job_id}", json={"state": "Aborted"})

    def poll(self, kind: str, job_id: str, seen: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Job info, polled with a growing delay until the job is JobComplete, Failed or Aborted."""
        delay = POLL_FIRST
        while True:
            info: dict[str, Any] = self.json("GET", f"jobs/{kind}/{job_id}")
            seen(info)
            if info.get("state") in FINISHED:
                return info
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)


def _problems(response: httpx.Response) -> list[str]:
    """``errorCode: message`` for each error of an error body (a JSON array on REST and Bulk API 2.0)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    items = body if isinstance(body, list) else [body]
    problems = []
    for item in items:
        if isinstance(item, dict) and ("errorCode" in item or "message" in item):
            problems.append(f"{item.get('errorCode', 'ERROR')}: {item.get('message', '')}")
        elif isinstance(item, dict) and "error" in item:  # OAuth-style bodies
            problems.append(f"{item['error']}: {item.get('error_description', '')}")
    if problems:
        return problems
    text = response.text.strip().replace("\n", " ")[:300]
    return [f"HTTP {response.status_code}: {text or response.reason_phrase}"]


@contextlib.contextmanager
def reported(target: Target) -> Iterator[OrgClient]:
    """An :class:`OrgClient`; the org's errors and network failures become messages and exit code 1."""
    import httpx
    from rich.markup import escape

    client = OrgClient(target)
    try:
        yield client
    except ApiError as error:
        for problem in error.problems:
            _err(f"[red]error:[/] {escape(problem)}")
        raise typer.Exit(1) from None
    except httpx.HTTPError as error:
        hint = ""
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            hint = " (the server's certificate is not trusted: pass --ca-bundle)"
        _err(f"[red]error:[/] cannot reach {escape(target.url)}: {escape(str(error) or type(error).__name__)}"
             f"{hint}")
        raise typer.Exit(1) from None
    finally:
        client.close()
