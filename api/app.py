"""The Litestar application: ``create_app(settings)`` wires routes, auth, errors and logging.

Guarantees: configuration comes only from the ``Settings`` passed in; the database is opened
when the app starts (per worker process) and closed when it stops; all synchronous database work
runs in worker threads, off the event loop; the API docs page (``/schema``) loads nothing from
another host: Swagger UI's files are served from the installed ``swagger-ui-py`` package.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from litestar import Litestar, Router
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from api import console, logs, problems
from api.auth import KeyAuthMiddleware, public_paths
from api.checkpointer import checkpoints
from api.eightxeight.service import dispatching
from api.lanes import BatchLane, Lane
from api.retention_job import retention
from api.routes import (
    admin,
    audit,
    consent,
    erasures,
    evidence,
    imports,
    intake,
    log,
    ops,
    suppression,
)
from api.settings import Settings
from api.state import Services
from projections.ledger import open_ledger

ROUTE_MODULES = [ops, intake, consent, audit, admin, log, evidence, imports, suppression, erasures]
DOCS_ASSETS = "/schema/assets"
"""Where Swagger UI's own files are served (public, like the rest of ``/schema``)."""


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's files in the installed ``swagger-ui-py`` package (found
    without importing it: only its files are used)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _docs_assets() -> Router:
    return create_static_files_router(
        path=DOCS_ASSETS,
        directories=[swagger_ui_files()],
        name="docs-assets",
        cache_control=CacheControlHeader(max_age=86400),
        include_in_schema=False,
    )


def _swagger() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{DOCS_ASSETS}/favicon-32x32.png'>",
        path=["/", "/swagger"],  # the docs page is /schema itself (JSON: /schema/openapi.json)
    )


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="consent-ledger",
        version="1",
        description=(
            "Event-sourced, tamper-evident ledger of SMS consent: 8x8 intake, pre-send "
            "suppression checks, audit trails and verifiable evidence. Errors are RFC 9457 "
            "problem details."
        ),
        path="/schema",
        render_plugins=[JsonRenderPlugin(), _swagger()],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="Authorization: Bearer cl_<id>_<secret>",
                ),
                "basic": SecurityScheme(
                    type="http",
                    scheme="basic",
                    description="Basic auth with the API key as the password "
                    "(what an 8x8 webhook configuration sends)",
                ),
            }
        ),
        security=[{"bearer": []}, {"basic": []}],
    )


def create_app(settings: Settings) -> Litestar:
    """A ready-to-serve app for ``settings`` (the database opens on start-up)."""
    logs.configure(settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        readers = ThreadPoolExecutor(settings.reader_threads, "consent-ledger-reader")
        loop.set_default_executor(readers)  # where sync handlers run
        ledger = open_ledger(settings.db, pool_size=settings.pool_size)
        lane = Lane(loop, "consent-ledger-lane")
        writers = ThreadPoolExecutor(settings.writer_threads, "consent-ledger-writer")
        services = Services(settings=settings, ledger=ledger, lane=lane, writers=writers)
        intake_lane = BatchLane(
            loop, "consent-ledger-intake", partial(intake.record_webhooks, services)
        )
        services.intake_lane = intake_lane
        app.state.services = services
        try:
            async with checkpoints(services), retention(services), dispatching(services):
                yield
        finally:
            intake_lane.close()
            lane.close()
            writers.shutdown()
            ledger.close()

    def provide_services(state: State) -> Services:
        services: Services = state.services
        return services

    handlers = [h for module in ROUTE_MODULES for h in module.ROUTES]
    return Litestar(
        route_handlers=[*handlers, _docs_assets(), console.router()],
        lifespan=[lifespan],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        middleware=[
            logs.request_log_middleware,
            DefineMiddleware(
                KeyAuthMiddleware, exclude=[*public_paths(settings.metrics), console.PATH_PATTERN]
            ),
        ],
        plugins=[problems.plugin()],
        openapi_config=_openapi(),
        template_config=console.template_config(),
        request_max_body_size=settings.max_body_bytes,
        logging_config=logs.app_logging_config(settings.log_format),
        debug=False,
    )
