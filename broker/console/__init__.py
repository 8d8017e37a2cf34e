"""The web console under `/ui` (issue #21): static pages that call the public HTTP API
through the signed-in session (proxy.py), so they can do nothing the API forbids.

    mount.py      `add_console(app)`: the routes, the session store's lifecycle
    pages.py      the HTML shell, static files, security headers
    openapi.py    the routes in the OpenAPI document (and so in the fuzz test)
    sessions.py   the session (cookie half + Redis half), CSRF
    signin.py     sign-in, whoami, sign-out
    proxy.py      /ui/api/call/<path>: the session's key on the public API
    loopback.py   the HTTP client of this front door's own listener
"""
