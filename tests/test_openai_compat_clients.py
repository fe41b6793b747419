"""Clients of ``OpenAICompatible`` share one TLS context per process (issue 29): none is loaded for ``http://``."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from interlock.generators import OpenAICompatible
from interlock.generators.openai_compat import tls


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every certificate-store load in this test (a fresh process-wide context, as in a new process)."""
    seen: list[Any] = []
    real = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        seen.append(args or kwargs)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    monkeypatch.setattr(tls, "_verified", None)
    monkeypatch.setattr(tls, "_plain", None)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return seen


async def test_plain_http_clients_load_no_certificates(loads: list[Any]) -> None:
    clients = [OpenAICompatible(f"http://127.0.0.1:{8000 + i}/v1", "m")._http() for i in range(20)]
    assert loads == []
    assert len({id(c) for c in clients}) == 20  # a client (and its connection pool) per generator, as before


async def test_https_clients_load_the_certificates_once(loads: list[Any]) -> None:
    for i in range(20):
        OpenAICompatible(f"https://api{i}.example/v1", "m")._http()
    assert len(loads) == 1
    assert tls.ssl_context_for("https://a.example") is tls.ssl_context_for("https://b.example")
    assert tls.ssl_context_for("https://a.example").verify_mode is ssl.CERT_REQUIRED


async def test_a_proxy_in_the_environment_gets_the_verifying_context(loads: list[Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "https://proxy.example:3128")  # the hop to the proxy may be TLS
    OpenAICompatible("http://127.0.0.1:8000/v1", "m")._http()
    assert len(loads) == 1
    assert tls.ssl_context_for("http://127.0.0.1:8000") is tls.ssl_context_for("https://a.example")
