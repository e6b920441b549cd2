"""Baseline for ``bench/rest_get.py``: the least a Python server can do to answer the same request.

A bare Starlette app plus the standard library's ``sqlite3``: ``GET
/services/data/v66.0/sobjects/Account/{id}`` checks that an ``Authorization`` header is present (a dict
lookup, no token store), selects the row from an SQLite file, rebuilds the record JSON (``attributes``
first, then the fields in table order) and returns it. No ORM, no metadata, no usage counting, no
session lookup: everything Interlink does on top of this is what the benchmark ratio measures.

Run it like Interlink is run (uvicorn, one worker, TLS, no access log)::

    python bench/baseline_app.py --db row.sqlite3 --port 8443 --certfile server.pem --keyfile server-key.pem

Create the SQLite file first with :func:`create_database`, from the record Interlink returns, so both
servers send payloads of about the same size.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TABLE = "account"
PATH = "/services/data/v66.0/sobjects/Account/{id}"
JSON_TYPE = "application/json;charset=UTF-8"
_META_TABLE = "column_kind"  # column name -> "bool" | "json" | "plain", to rebuild the wire values


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict | list):
        return "json"
    return "plain"


def create_database(path: Path, record: Mapping[str, Any]) -> None:
    """Create ``path`` with one ``account`` table holding ``record`` (a REST record body) as one row.

    Scalars become native SQLite columns; booleans are stored as integers and compound values
    (addresses) as JSON text, and both are turned back into their JSON shape when served.
    """
    fields = {name: value for name, value in record.items() if name != "attributes"}
    if "Id" not in fields:
        raise ValueError("the record has no Id")
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        columns = ", ".join(f'"{name}"' + (" PRIMARY KEY" if name == "Id" else "") for name in fields)
        conn.execute(f"CREATE TABLE {TABLE} ({columns})")
        conn.execute(f"CREATE TABLE {_META_TABLE} (name TEXT PRIMARY KEY, kind TEXT NOT NULL)")
        conn.executemany(f"INSERT INTO {_META_TABLE} VALUES (?, ?)", [(n, _kind(v)) for n, v in fields.items()])
        stored = [json.dumps(v) if _kind(v) == "json" else v for v in fields.values()]
        conn.execute(f"INSERT INTO {TABLE} VALUES ({', '.join('?' for _ in fields)})", stored)
        conn.commit()
    finally:
        conn.close()


def build_app(db_path: Path) -> Starlette:
    """The baseline ASGI app reading rows from ``db_path`` (one connection, opened once)."""
    conn = sqlite3.connect(db_path, check_same_thread=False)
    kinds = dict(conn.execute(f"SELECT name, kind FROM {_META_TABLE}").fetchall())
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")]
    query = f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} FROM {TABLE} WHERE \"Id\" = ?"

    async def get_account(request: Request) -> Response:
        if "authorization" not in request.headers:
            return Response(b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]',
                            status_code=401, media_type=JSON_TYPE)
        record_id = request.path_params["id"]
        row = conn.execute(query, (record_id,)).fetchone()
        if row is None:
            return Response(b'[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]',
                            status_code=404, media_type=JSON_TYPE)
        body: dict[str, Any] = {"attributes": {"type": "Account", "url": request.url.path}}
        for name, value in zip(columns, row, strict=True):
            kind = kinds.get(name)
            if kind == "bool" and value is not None:
                value = bool(value)
            elif kind == "json" and value is not None:
                value = json.loads(value)
            body[name] = value
        return Response(json.dumps(body, separators=(",", ":")).encode(), media_type=JSON_TYPE)

    return Starlette(routes=[Route(PATH, get_account, methods=["GET"])])


def main(argv: list[str] | None = None) -> None:
    """Serve the baseline with uvicorn: one worker, TLS, settings mirroring ``interlink up``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    args = parser.parse_args(argv)
    uvicorn.run(build_app(args.db), host=args.host, port=args.port, ssl_certfile=args.certfile,
                ssl_keyfile=args.keyfile, log_level="warning", access_log=False, lifespan="off",
                server_header=False, proxy_headers=False, workers=None)


if __name__ == "__main__":
    main()
