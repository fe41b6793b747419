"""The TLS context every ``OpenAICompatible`` client of this process shares.

Loading the certificate store costs tens of milliseconds of CPU; an ``httpx.AsyncClient`` made without a context
loads its own. A process serving a hundred streams from a hundred generators would pay it a hundred times, even for
a plain ``http://`` server that never speaks TLS. Here the store is loaded once per process, when the first
``https://`` client needs it, and a client of a plain ``http://`` URL gets a context that loads nothing (unless a
proxy is configured in the environment: the connection to the proxy may use TLS).
"""

from __future__ import annotations

import ssl
import threading
from urllib.parse import urlsplit
from urllib.request import getproxies

import httpx

__all__ = ["ssl_context_for"]

_lock = threading.Lock()
_verified: ssl.SSLContext | None = None
_plain: ssl.SSLContext | None = None


def _verifying() -> ssl.SSLContext:
    """httpx's default context (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), made once."""
    global _verified
    with _lock:
        if _verified is None:
            _verified = httpx.create_ssl_context()
        return _verified


def _unused() -> ssl.SSLContext:
    """A context that loads no certificates (and verifies, were it ever used): for clients that speak no TLS."""
    global _plain
    with _lock:
        if _plain is None:
            _plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        return _plain


def ssl_context_for(url: str) -> ssl.SSLContext:
    """The shared context for a client of ``url``: verifying for ``https://`` (or behind a proxy), else one that
    loads nothing."""
    proxies = getproxies()
    if urlsplit(url).scheme.lower() == "http" and not any(proxies.get(s) for s in ("http", "https", "all")):
        return _unused()
    return _verifying()
