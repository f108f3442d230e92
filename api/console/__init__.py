"""The compliance console: server-rendered pages at ``/console`` for the people who answer
"why did you text me?" (the README's "Compliance console").

Guarantees: every page and asset is served by the service itself (templates and static files
are package data; nothing is fetched from another host); every response carries a strict
Content-Security-Policy (scripts and styles from the console's own files only: no inline script,
no style attribute), ``X-Content-Type-Options: nosniff``, no referrer and ``no-store`` caching;
every value is escaped by the template engine (autoescape on, undefined names are errors);
pages need a signed-in session (``api.console.session``), every POST its anti-forgery token; the
console reads and acts only through the application layer, as the API does.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import Router
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.middleware import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from api.console import actions, errors, pages
from api.console.session import PATH, SessionMiddleware, check_csrf
from api.console.text import age, visible

__all__ = ["PATH", "PATH_PATTERN", "router", "template_config"]

PATH_PATTERN = f"^{PATH}(/|$)"
"""The console's paths: the API's key authentication leaves them to the console's sessions."""
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    ResponseHeader(name="Content-Security-Policy", value=CSP),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Referrer-Policy", value="no-referrer"),
    ResponseHeader(name="X-Frame-Options", value="DENY"),
]


def environment() -> Environment:
    """The console's Jinja environment: templates from the package, autoescaped, strict."""
    env = Environment(
        loader=PackageLoader("api.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["visible"] = visible
    env.filters["age"] = age
    env.globals["console"] = PATH
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The app's template engine (only the console renders templates)."""
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment()))


def router() -> Router:
    """Every console route, its static files, sessions, anti-forgery checks and error pages."""
    static = create_static_files_router(
        path="/static",
        directories=[STATIC],
        name="console-static",
        cache_control=CacheControlHeader(max_age=3600),
        include_in_schema=False,
        opt={"exclude_from_auth": True},
    )
    return Router(
        path=PATH,
        route_handlers=[*pages.ROUTES, *actions.ROUTES, static],
        middleware=[DefineMiddleware(SessionMiddleware)],
        before_request=check_csrf,
        exception_handlers=errors.HANDLERS,
        response_headers=HEADERS,
        cache_control=CacheControlHeader(no_store=True),
        include_in_schema=False,
    )
