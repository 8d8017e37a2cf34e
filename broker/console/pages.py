"""The console's pages: one HTML shell and its static scripts, styles and vendored Chart.js,
served from the package (no build step, no Node.js at run time), with the headers that keep
them from being framed, leaking the URL or running anything but their own scripts."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from workers.errors import NotFound

STATIC = Path(__file__).parent / "static"
# The files served, listed once at start: a name not in here is a 404, whatever it spells.
STATIC_FILES = {
    str(path.relative_to(STATIC)): path
    for path in sorted(STATIC.rglob("*"))
    if path.is_file() and path.name != "index.html"
}
PREFIX = "/ui"
SECURITY_HEADERS = {
    # Only our own scripts and styles; the API only on this origin; never in a frame.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def static_file(request: web.Request) -> web.FileResponse:
    path = STATIC_FILES.get(request.match_info["name"])
    if path is None:
        raise NotFound("no such console file", code="not_found")
    # Scripts change with the package; revalidate rather than serve a stale page.
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every /ui answer, pages, static files, API calls and errors alike."""
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        response.headers.update(SECURITY_HEADERS)
