"""The benchmark's baseline server: a hello-world Litestar app under the same uvicorn settings.

``GET /hello`` answers a small JSON document; ``POST /hello`` reads the request body and answers
the same (the baseline for the webhook, which also posts a body). No database, no auth, no
middleware: the floor that the framework, the server and the workers set. It is run exactly as
``consent-ledger serve`` runs the real app (``api.serve.run_uvicorn``: uvicorn, app factory, N
worker processes each listening on its own socket, no access log, same log configuration,
lifespan on, no server header).

    python bench/hello_app.py --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from litestar import Litestar, Request, get, post

sys.path.insert(0, str(Path(__file__).resolve().parent))


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    """A constant answer."""
    return {"hello": "world"}


@post("/hello", status_code=200)
async def hello_post(request: Request[object, object, object]) -> dict[str, object]:
    """Read the body, answer its length."""
    body = await request.body()
    return {"hello": "world", "bytes": len(body)}


def create() -> Litestar:
    """The hello-world app (one per worker process)."""
    return Litestar(route_handlers=[hello, hello_post], debug=False)


def main() -> int:
    """Serve the hello-world app with the service's uvicorn settings."""
    from api import serve

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    return serve.run_uvicorn(
        "hello_app:create",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_format="json",
    )


if __name__ == "__main__":
    sys.exit(main())
