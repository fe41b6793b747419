"""URLs that carry credentials: join an endpoint onto a base URL without losing its query, and show one without its
secrets.

A base URL may hold credentials (``http://user:pass@host/v1``, ``https://host/v1?api-key=KEY``). Requests must go
to the real URL, but every message, log line and error body shows :func:`redact_url`'s form, and any text that
may quote the URL (an HTTP library's exception) goes through :func:`redact_text` first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from interlock.monitor.errors import ConfigError

__all__ = ["REDACTED", "api_root", "join_url", "redact_text", "redact_url", "url_secrets"]

REDACTED = "***"
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SHORTEST_SECRET = 8  # shorter ones are replaced only inside URLs: replacing every "2024" would garble the text


def api_root(base_url: str) -> str:
    """The API root of an OpenAI-compatible server's ``base_url`` (a bare ``http://host:port`` gets ``/v1``); a
    query (``?api-key=...``) stays at the end, where :func:`join_url` keeps it when an endpoint is appended.
    ``ConfigError`` (showing the URL redacted) for what is not an http(s) URL, or is an endpoint."""
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018  # a port that is not a number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base_url must be an http(s) URL such as 'http://localhost:8000/v1', got "
                          f"{redact_url(base_url)!r}")
    path = parts.path.rstrip("/")
    if path.endswith("/completions"):
        raise ConfigError(f"base_url is the API root such as 'http://localhost:8000/v1', not an endpoint: "
                          f"{redact_url(base_url)!r}")
    return urlunsplit((parts.scheme, parts.netloc, path or "/v1", parts.query, ""))


def join_url(base: str, path: str) -> str:
    """``base`` with ``path`` appended to its path; its query and fragment stay where they belong
    (``join_url("http://h/v1?key=K", "chat/completions")`` is ``http://h/v1/chat/completions?key=K``)."""
    parts = urlsplit(base)
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, joined, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with its user name, password and every query value replaced by ``***``: what may be shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a port that is not a number, brackets that do not close: show nothing of it
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        shown_host = f"[{host}]" if ":" in host else host
        netloc = f"{REDACTED}@{shown_host}" + (f":{port}" if port is not None else "")
    query = parts.query
    if query:
        query = "&".join(f"{quote(key, safe='')}={REDACTED}" if value or "=" in pair else quote(key, safe="")
                         for pair in query.split("&") if pair
                         for key, _, value in [pair.partition("=")])
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets ``url`` holds (user name, password, query values; raw and decoded), longest first."""
    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
    except ValueError:
        return (url,)
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    found += [pair.partition("=")[2] for pair in parts.query.split("&")]
    if parts.fragment:
        found.append(parts.fragment)
    secrets = {s for s in found if s} | {unquote(s) for s in found if s}
    return tuple(sorted(secrets, key=len, reverse=True))


def redact_text(text: str, url: str = "") -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`), and every secret of ``url`` of eight or more
    characters replaced by ``***`` wherever else it appears (for messages that may quote a URL or a key)."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    for secret in url_secrets(url) if url else ():
        if len(secret) >= _SHORTEST_SECRET:
            text = text.replace(secret, REDACTED)
    return text
