#!/usr/bin/env python3
"""Container health checks for an Interlink deployment (the image installs this file as ``interlink-healthcheck``).

    interlink-healthcheck ready    # the API of this container answers GET /ready with 200 over HTTPS
    interlink-healthcheck worker   # an `interlink worker --jobs` of this container heartbeated within 30 s

``ready`` asks https://127.0.0.1:$INTERLINK_PORT/ready (8443 by default), trusting the local CA of
``$INTERLINK_DATA_DIR/tls/bundle.pem``. ``worker`` reads the org's process registry in the store named by the
settings (``INTERLINK_STORE``, else SQLite under ``INTERLINK_DATA_DIR``) without opening the org. Exit 0 when
healthy, 1 otherwise, printing one line either way (Docker keeps it in ``docker inspect``).
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path


def check_ready(port: int, data_dir: Path, timeout: float) -> tuple[bool, str]:
    url = f"https://127.0.0.1:{port}/ready"
    bundle = data_dir / "tls" / "bundle.pem"
    if not bundle.is_file():
        return False, f"no CA bundle at {bundle} yet (the API creates it when it starts)"
    context = ssl.create_default_context(cafile=str(bundle))
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status == 200, f"{url} {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} {exc.code}: {exc.read(300).decode('utf-8', 'replace')}"
    except (OSError, ValueError) as exc:
        return False, f"{url} not answering: {getattr(exc, 'reason', None) or exc}"


def check_worker(max_age: float) -> tuple[bool, str]:
    from interlink.app.processes import ProcessRegistry
    from interlink.settings import Settings
    from interlink.store.database import Store

    settings = Settings.load({})
    store = Store(settings.store_url)  # the system tables are declared without opening (no deploy lock taken)
    try:
        here = socket.gethostname()
        mine = [p for p in ProcessRegistry(store).live(max_age) if p.kind == "worker" and p.host == here]
    except Exception as exc:
        return False, f"cannot read the process registry: {str(exc).splitlines()[0][:200]}"
    finally:
        store.close()
    if not mine:
        return False, f"no worker of {here} heartbeated within {max_age:.0f} s"
    return True, ", ".join(f"worker {p.pid}@{p.host} (jobs: {'yes' if p.jobs else 'no'})" for p in mine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interlink-healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["ready", "worker"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("INTERLINK_PORT") or 8443))
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("INTERLINK_DATA_DIR") or ".interlink"))
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for /ready")
    parser.add_argument("--max-age", type=float, default=30.0, help="seconds since a worker's last heartbeat")
    args = parser.parse_args(argv)
    if args.what == "ready":
        healthy, detail = check_ready(args.port, args.data_dir, args.timeout)
    else:
        healthy, detail = check_worker(args.max_age)
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
