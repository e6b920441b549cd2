"""Regenerate the Pub/Sub API stubs (src/interlink/pubsub/_proto/*_pb2*.py) from pubsub_api.proto.

Run from the repository root: ``python tools/gen_pubsub.py`` (needs grpcio-tools). The generated files
are committed, excluded from ruff, and never edited by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO = Path("interlink/pubsub/_proto/pubsub_api.proto")


def main() -> int:
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main([
        "grpc_tools.protoc", f"-I{SRC}", f"-I{include}",
        f"--python_out={SRC}", f"--pyi_out={SRC}", f"--grpc_python_out={SRC}", str(PROTO),
    ])
    if code != 0:
        print("protoc failed", file=sys.stderr)
        return int(code)
    print(f"generated stubs for {PROTO} under {SRC / PROTO.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
