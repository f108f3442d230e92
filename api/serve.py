"""Running the service: ``consent-ledger serve`` on uvicorn, several workers on one SQLite file.

Guarantees:

- the database is created and migrated before any worker starts;
- on a database without any API key, an admin key for tenant ``default`` (every scope) is created
  atomically and shown once, framed, on stderr — never through the log stream;
- workers receive their settings only through ``CONSENT_LEDGER_*`` environment variables
  (``Settings.to_env``), read back by the app factory ``api.asgi:create``;
- Prometheus counters are shared by every worker through ``PROMETHEUS_MULTIPROC_DIR``: the one
  already set, else a fresh private directory that is removed when the server stops;
- with several workers, each listens on a socket of its own (``api.listeners``), so the kernel
  spreads connections over them; an address already in use is refused before any worker starts;
- SIGTERM and SIGINT stop the server gracefully (in-flight requests finish) and ``serve`` returns 0;
- no reload, no access log (the app logs one line per request itself).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

from api import logs
from api.keys import SCOPES, create_key, has_keys
from api.listeners import worker_listener
from api.settings import Settings
from projections.ledger import open_ledger

BOOTSTRAP_TENANT = "default"
"""The tenant whose admin key ``serve`` creates on an empty database."""
APP_FACTORY = "api.asgi:create"
GRACEFUL_SHUTDOWN_SECONDS = 20
"""How long a stopping worker waits for in-flight requests before closing them."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ADDRESS_IN_USE = 3
"""Exit code when the address cannot be listened on (uvicorn's own start-up failure code)."""


def bootstrap(location: str | Path) -> str | None:
    """Create and migrate the database at ``location`` (``projections.ledger.open_ledger``); on
    a database without any API key, create tenant ``default``'s admin key and return it
    (``None`` otherwise). Two processes racing get at most one key (both decide inside the
    store's exclusive write transaction)."""
    ledger = open_ledger(location)
    try:
        with ledger.store.keys_for_update() as keys:
            key = None
            if not has_keys(keys):
                key = create_key(
                    keys,
                    tenant=BOOTSTRAP_TENANT,
                    scopes=list(SCOPES),
                    label="bootstrap admin (created by serve)",
                )
    finally:
        ledger.close()
    return key


def announce_key(key: str, stream: TextIO | None = None) -> None:
    """Show the bootstrap admin key once, framed, on ``stream`` (stderr by default)."""
    out = stream or sys.stderr
    rule = "=" * 76
    out.write(
        f"\n{rule}\n"
        f"  consent-ledger: new database, so an admin key was created for tenant "
        f"'{BOOTSTRAP_TENANT}'\n"
        f"  (scopes {','.join(SCOPES)}). It is shown ONCE and cannot be recovered:\n\n"
        f"      {key}\n\n"
        "  Send it as 'Authorization: Bearer <key>'. It is an ADMIN key: do not give it to\n"
        "  8x8. For 8x8's webhook or Automation Builder step, make an ingest-only key:\n"
        "      consent-ledger keys create --scopes ingest\n"
        "  (sent as 'Bearer <key>', or as the Basic-auth password). Manage keys with\n"
        "  'consent-ledger keys create|list|revoke'.\n"
        f"{rule}\n\n"
    )
    out.flush()


@contextmanager
def shared_metrics_dir() -> Iterator[Path]:
    """The directory where workers share Prometheus counters: ``PROMETHEUS_MULTIPROC_DIR`` if set
    (kept), else a fresh private one (mode 0700) that is removed, with the variable, on exit."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        Path(existing).mkdir(parents=True, exist_ok=True)
        yield Path(existing)
        return
    path = Path(tempfile.mkdtemp(prefix="consent-ledger-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` (inherited by worker processes); restore on exit."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like SIGINT (``KeyboardInterrupt``) outside uvicorn's own signal handling.

    uvicorn re-raises the signal that stopped a single-process server once it has shut down;
    with this handler that ends ``uvicorn.run`` normally instead of killing the process before
    the clean-up runs.
    """
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(settings: Settings, *, host: str, port: int, workers: int) -> int:
    """Prepare the database, then serve until SIGTERM/SIGINT; returns the exit code (0, or
    ``ADDRESS_IN_USE`` when something already listens on ``host:port``)."""
    settings = Settings.from_env(settings.to_env())  # what the workers will see, exactly
    with sigterm_as_interrupt():
        key = bootstrap(settings.db)
        if key is not None:
            announce_key(key)
        with shared_metrics_dir(), environment(settings.to_env()), _reaping_helpers():
            return run_uvicorn(
                APP_FACTORY, host=host, port=port, workers=workers, log_format=settings.log_format
            )


def run_uvicorn(factory: str, *, host: str, port: int, workers: int, log_format: str) -> int:
    """Serve the app factory ``factory`` ("module:function") on uvicorn with the service's
    options until SIGTERM/SIGINT; several workers each listen on their own socket."""
    import uvicorn  # heavy; only the serve command needs it
    from uvicorn.supervisors import Multiprocess

    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "reload": False,
        "access_log": False,
        "log_config": logs.server_log_config(log_format),
        "lifespan": "on",
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    try:
        listener = worker_listener(host, port) if workers > 1 else None
    except OSError as exc:
        sys.stderr.write(f"consent-ledger serve: cannot listen on {host}:{port}: {exc.strerror}\n")
        return ADDRESS_IN_USE
    if listener is None:
        uvicorn.run(factory, **options)
        return 0
    config = uvicorn.Config(factory, **options)  # configures logging, as uvicorn.run does
    logging.getLogger("uvicorn.error").info(
        "serving on http://%s:%d with %d workers, each listening on its own socket",
        host,
        port,
        workers,
    )
    with closing(listener), suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[listener]).run()
    return 0


@contextmanager
def _reaping_helpers() -> Iterator[None]:
    """On exit, stop and reap multiprocessing's helper process (started when workers are
    spawned), so nothing of ours outlives ``serve`` — even where process 1 reaps no orphans."""
    try:
        yield
    finally:
        from multiprocessing import resource_tracker

        stop = getattr(resource_tracker._resource_tracker, "_stop", None)  # private; 3.11+
        if stop is not None:
            stop()
