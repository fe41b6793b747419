"""Credentials in ``--base-url`` (``http://user:pass@host/v1?api-key=KEY``): requests carry them to the upstream, the
query string stays a query string when the endpoint is appended, and no 502 body, banner or log line shows them."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, free_port, serving

from tests.scripted_upstream import ScriptedUpstream, Turn

PASSWORD = "pa55-word-Zq81"
KEY = "sk-query-key-77c1d2"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "2 + 2?"}]


def with_credentials(url: str) -> str:
    """``http://127.0.0.1:P/v1`` as ``http://alice:PASSWORD@127.0.0.1:P/v1?api-key=KEY``."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://alice:{PASSWORD}@{rest}?api-key={KEY}"


@pytest.fixture
def interlock_log() -> Iterator[list[str]]:
    """Every line the ``interlock`` logger writes during the test (whatever its propagation)."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("interlock")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_the_url_helpers_keep_the_query_and_hide_the_secrets() -> None:
    from interlock.monitor.urls import join_url, redact_text, redact_url

    url = f"http://alice:{PASSWORD}@h:8001/v1?api-key={KEY}&api-version=2024-06-01"
    assert join_url(url, "chat/completions") == \
        f"http://alice:{PASSWORD}@h:8001/v1/chat/completions?api-key={KEY}&api-version=2024-06-01"
    assert redact_url(url) == "http://***@h:8001/v1?api-key=***&api-version=***"
    said = f"Client error '401' for url '{join_url(url, 'models')}'; the key {KEY} was refused"
    shown = "http://***@h:8001/v1/models?api-key=***&api-version=***"
    assert redact_text(said, url) == f"Client error '401' for url '{shown}'; the key *** was refused"


async def test_requests_keep_the_query_and_the_credentials_reach_the_upstream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    upstream = ScriptedUpstream(lambda body: Turn("So 2 + 2 = 4."))
    async with serving(upstream.app()) as up_url:
        backend = UpstreamBackend(with_credentials(up_url + "/v1"))
        async with serving(create_app(ProxyConfig(backend))) as url, \
                openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
            answer = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
            models = await client.models.list()
    assert answer.choices[0].message.content == "So 2 + 2 = 4."
    assert [m.id for m in models.data] == ["scripted-up"]
    assert upstream.urls == [f"{up_url}/v1/chat/completions?api-key={KEY}", f"{up_url}/v1/models?api-key={KEY}"]
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert upstream.authorizations[0] == basic


async def test_no_502_body_or_log_line_shows_the_credentials(interlock_log: list[str]) -> None:
    down = with_credentials(f"http://127.0.0.1:{free_port()}/v1")
    backend = UpstreamBackend(down, options={"retries": 0})
    async with serving(create_app(ProxyConfig(backend))) as url, \
            openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as chat_error:
            await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        with pytest.raises(openai.APIStatusError) as models_error:
            await client.models.list()
    shown = "http://***@127.0.0.1:"
    for error in (chat_error.value, models_error.value):
        assert error.status_code == 502
        said = error.response.text
        assert PASSWORD not in said and KEY not in said and "alice" not in said
        assert shown in said and ("/v1?api-key=***" in said or "/v1/chat/completions?api-key=***" in said)
    assert interlock_log, "the failures were logged"
    for line in interlock_log:
        assert PASSWORD not in line and KEY not in line


def test_the_banner_and_the_log_of_the_command_never_show_the_credentials() -> None:
    port, down_port = free_port(), free_port()
    down = with_credentials(f"http://127.0.0.1:{down_port}/v1")
    process = subprocess.Popen([sys.executable, "-m", "interlock", "--log-level", "info", "proxy", "--base-url", down,
                                "--port", str(port), "-v", "none"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "OPENAI_API_KEY": ""})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0].decode(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the proxy did not start within 60 s"
            time.sleep(0.2)
        failed = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
                            json={"model": "m", "messages": MESSAGES})
        assert failed.status_code == 502 and PASSWORD not in failed.text and KEY not in failed.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output = process.communicate(timeout=20)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
    assert f"-> upstream http://***@127.0.0.1:{down_port}/v1?api-key=***; " in output
    assert "retrying" in output  # the log was written, redacted
    assert PASSWORD not in output and KEY not in output and "alice" not in output
