"""The console's page and its static files, served from the package (nothing from a CDN)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

# Litestar adds `; charset=utf-8` to text/* types itself.
# Name under /console/static/ -> (file in the package's static/ folder, content type). Only these.
ASSETS = {
    "dom.js": ("dom.js", "text/javascript"),
    "views.js": ("views.js", "text/javascript"),
    "console.js": ("console.js", "text/javascript"),
    "console.css": ("console.css", "text/css"),
    "uPlot.iife.min.js": ("vendor/uplot/uPlot.iife.min.js", "text/javascript"),
    "uPlot.min.css": ("vendor/uplot/uPlot.min.css", "text/css"),
}

# Everything the page loads is its own: scripts and styles from this origin only, no inline script,
# no framing, requests to this origin only. (uPlot sizes its canvas through the CSSOM, which
# style-src does not govern.)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " font-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@cache
def read(relative: str) -> bytes:
    """A file of static/, read once per process."""
    return files("service.console").joinpath("static", *relative.split("/")).read_bytes()


@cache
def version(name: str) -> str:
    """A short hash of an asset's content: its URL changes whenever the file does."""
    return hashlib.sha256(read(ASSETS[name][0])).hexdigest()[:16]


@cache
def page() -> bytes:
    """The page, each asset named with its version so browsers may keep it for good."""
    html = read("index.html")
    for name in ASSETS:
        ref = f'"/console/static/{name}"'.encode()
        html = html.replace(ref, f'"/console/static/{name}?v={version(name)}"'.encode())
    return html


def cache_control(name: str, requested_version: str | None) -> str:
    """Immutable under the current version's URL; otherwise revalidated every time."""
    return "public, max-age=31536000, immutable" if requested_version == version(name) else "no-cache"
