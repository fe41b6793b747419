"""``OpenAICompatible``: stream one trace from an OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp,
``transformers serve``, OpenAI) with httpx.

Each ``stream(request)`` is one streaming POST; a rollback or a fork is just another request that carries the trace
so far (see :mod:`interlock.generators.openai_compat.payloads` for exactly what is sent). Failures before the first
token (connection refused or reset, timeouts, 408/429/5xx) are retried with exponential backoff; after text has been
delivered they raise :class:`~interlock.generators.errors.StreamInterrupted`, since a retry would deliver it twice.
Other 4xx answers raise :class:`~interlock.generators.errors.ServerError` at once, naming the status and the
server's message. Cancelling the consumer closes the response, which tells the server to stop generating.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx
from interlock import Capabilities, Chunk, ConfigError, GenerationRequest
from interlock.generators.errors import MalformedStream, ServerError, ServerUnavailable, StreamInterrupted
from interlock.generators.openai_compat.deltas import Delta, ToolCallAssembler, Usage, parse_event, to_chunks
from interlock.generators.openai_compat.payloads import (
    CONTINUE_FIELDS,
    DEFAULT_CONTINUE_INSTRUCTION,
    Sampling,
    chat_body,
    chat_shape,
    completions_body,
)
from interlock.generators.openai_compat.sse import SSEDecoder
from interlock.monitor.chunks import ToolCallRequest, tool_calls_chunk
from interlock.monitor.textout import scrub
from interlock.monitor.urls import api_root, join_url, redact_text, redact_url

__all__ = ["OpenAICompatible"]

Endpoint = Literal["chat", "completions"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RESERVED = frozenset({"model", "stream", "prompt", "messages"})
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 16 * 1024 * 1024
_CLOSE_TIMEOUT = 5.0


class _Retryable(Exception):
    """Internal: a failure before the first token that another attempt may not have."""

    def __init__(self, reason: str, *, delay: float | None = None, error: Exception | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.error = error


def _json_bytes(body: dict[str, Any], url: str) -> bytes:
    """The request body as UTF-8 JSON. A lone surrogate (which JSON's ``\\ud800`` escape lets a client send)
    cannot be encoded: it is sent as U+FFFD, and the replacement is logged (the project's policy for text written
    out)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        text, count = scrub(text)
        from interlock.monitor.logs import get_logger

        get_logger(backend="openai_compat").warning("lone surrogates sent as U+FFFD", url=url, count=count)
        return text.encode("utf-8")


def _server_message(body: bytes) -> str:
    """The server's own words from an error body (OpenAI ``error.message``, FastAPI ``detail``, or text)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(obj, Mapping):
        for key in ("error", "detail", "message"):
            value = obj.get(key)
            if isinstance(value, Mapping) and value.get("message"):
                return str(value["message"])
            if value:
                return value if isinstance(value, str) else json.dumps(value)
    return text[:500]


class OpenAICompatible:
    """A generator backed by an OpenAI-compatible server's streaming completions or chat completions.

    - ``base_url``: the API root, e.g. ``http://localhost:8000/v1`` (a bare ``http://host:port`` gets ``/v1``).
    - ``endpoint``: ``"chat"`` (``/chat/completions``; the prompt is the user message, the trace the assistant's
      answer) or ``"completions"`` (``/completions``; raw continuation of prompt + trace).
    - ``api_key``: sent as a bearer token; by default read from the environment variable ``api_key_env``
      (``OPENAI_API_KEY``); none is sent when neither is set (local servers).
    - ``temperature``, ``top_p``, ``seed``, ``max_tokens`` (per request; a smaller allowance of the monitor
      wins): sampling fields; ``None`` leaves the server's default. Greedy requests (forks) use temperature 0.
    - ``logprobs``: ask for each token's logprob (``Chunk.logprobs``); ``top_logprobs=k`` also asks for the k
      best alternatives, from which ``Chunk.entropy`` is estimated.
    - ``continue_final_message``: ``True`` continues the assistant message with vLLM's fields, ``False``
      re-asks with ``continue_instruction``, ``"auto"`` tries the former and falls back to the latter (for the
      rest of this generator's life) when the server rejects the fields with a 400 or 422.
    - ``timeout``: the longest wait for any read (so also for the first token); ``connect_timeout`` for the
      connection. ``retries`` more attempts after the first, ``backoff`` seconds doubling up to ``max_backoff``.
    - ``include_usage``: ask for the server's token counts (``stream_options.include_usage``), which correct the
      count of streamed events to real tokens at the end of each stream (dropped for the rest of this
      generator's life when the server rejects the field); ``count_tokens``: a function of a text giving its
      number of tokens (a local tokenizer), used for events without logprobs until the server's count comes.
    - Tool calls (send ``tools`` in ``extra_body``) are assembled from the stream and yielded whole at its end,
      as one chunk whose ``tool_calls`` holds them and whose text is their markers.
    - ``extra_body``: more JSON fields for every request (e.g. ``{"repetition_penalty": 1.1}``);
      ``headers``: more HTTP headers; ``client``: an ``httpx.AsyncClient`` to use instead of an own one.
    """

    def __init__(self, base_url: str, model: str, *, endpoint: Endpoint = "chat", api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", temperature: float | None = None, top_p: float | None = None,
                 seed: int | None = None, max_tokens: int | None = 1024, logprobs: bool = False,
                 top_logprobs: int = 0, timeout: float = 60.0, connect_timeout: float = 10.0, retries: int = 3,
                 backoff: float = 0.5, max_backoff: float = 8.0,
                 continue_final_message: bool | Literal["auto"] = "auto",
                 continue_instruction: str = DEFAULT_CONTINUE_INSTRUCTION, system_prompt: str | None = None,
                 extra_body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                 client: httpx.AsyncClient | None = None, include_usage: bool = True,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.api_root = api_root(base_url)
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be the server's model name, got {model!r}")
        if endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint must be 'chat' or 'completions', got {endpoint!r}")
        if temperature is not None and not temperature >= 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
            raise ConfigError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")
        if not isinstance(top_logprobs, int) or not 0 <= top_logprobs <= 20:
            raise ConfigError(f"top_logprobs must be an integer from 0 to 20, got {top_logprobs!r}")
        if top_logprobs and not logprobs:
            raise ConfigError("top_logprobs needs logprobs=True")
        if not timeout > 0 or not connect_timeout > 0:
            raise ConfigError(f"timeout and connect_timeout must be positive, got {timeout} and {connect_timeout}")
        if not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
        if not backoff >= 0 or not max_backoff >= 0:
            raise ConfigError(f"backoff and max_backoff must be >= 0, got {backoff} and {max_backoff}")
        if continue_final_message not in (True, False, "auto"):
            raise ConfigError(f"continue_final_message must be True, False or 'auto', got {continue_final_message!r}")
        extra = dict(extra_body or {})
        reserved = sorted(_RESERVED & extra.keys())
        if reserved:
            raise ConfigError(f"extra_body may not set {reserved}: the generator sets them for every request")
        self.model = model
        self.endpoint: Endpoint = endpoint
        self.url = join_url(self.api_root, "chat/completions" if endpoint == "chat" else "completions")
        self.shown_url = redact_url(self.url)  # what messages and logs show: no user, password or query values
        self.sampling = Sampling(temperature=temperature, top_p=top_p, seed=seed, max_tokens=max_tokens,
                                 logprobs=logprobs, top_logprobs=top_logprobs)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.continue_final_message = continue_final_message
        self.continue_instruction = continue_instruction
        self.system_prompt = system_prompt
        self.extra_body = extra
        key = api_key if api_key is not None else os.environ.get(api_key_env)
        self._headers = {"Accept": "text/event-stream", **({"Authorization": f"Bearer {key}"} if key else {}),
                         **dict(headers or {})}
        self._user_client = client
        self._client: httpx.AsyncClient | None = None
        self._client_loop: object = None
        # in "auto" mode: None until the server has accepted or rejected continue_final_message
        self._server_continues: bool | None = (None if continue_final_message == "auto"
                                               else bool(continue_final_message))
        self._usage = bool(include_usage)
        self.count_tokens = count_tokens
        self.prompt_tokens: int | None = None  # the server's count for the latest main request, when it sent one

    def __repr__(self) -> str:
        return (f"OpenAICompatible({redact_url(self.api_root)!r}, {self.model!r}, endpoint={self.endpoint!r}, "
                f"continue_final_message={self.continue_final_message!r})")

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(token_ids=False, logprobs=self.sampling.logprobs,
                            entropy=self.sampling.top_logprobs > 0, resumable=True, kv_rollback=False, fork=True,
                            tool_calls=self.endpoint == "chat")

    @property
    def server_continues(self) -> bool | None:
        """Whether chat requests continue the assistant message (``None``: not yet known in ``"auto"`` mode)."""
        return self._server_continues

    # -- the HTTP client ------------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        """The client for the running event loop (a pooled connection cannot move to another loop)."""
        if self._user_client is not None:
            return self._user_client
        loop = anyio.lowlevel.current_token()
        if self._client is None or self._client_loop != loop:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                headers={"User-Agent": "interlock"})
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the own HTTP client (a client passed in stays open)."""
        if self._client is not None:
            client, self._client = self._client, None
            with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await client.aclose()

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests ------------------------------------------------------------------------------------
    def body(self, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body the next request for ``request`` sends (what a rollback or a fork re-sends)."""
        if self.endpoint == "completions":
            body = completions_body(self.model, request, self.sampling, self.extra_body)
        else:
            shape = chat_shape(request, self._server_continues is not False)
            body = chat_body(self.model, request, self.sampling, self.extra_body, shape=shape,
                             system_prompt=self.system_prompt, continue_instruction=self.continue_instruction)
        if self._usage:
            body.setdefault("stream_options", {"include_usage": True})
        return body

    def _delay(self, attempt: int, hint: float | None) -> float:
        if hint is not None:
            return min(max(0.0, hint), self.max_backoff)
        base = min(self.max_backoff, self.backoff * float(2 ** (attempt - 1)))
        return base / 2 + random.uniform(0, base / 2)  # equal jitter: spread clients, keep a floor

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Stream the continuation of ``request.prompt + request.prefix``."""
        if request.max_new_tokens is not None and request.max_new_tokens <= 0:
            return
        client = self._http()
        attempt = 0
        delivered = 0  # characters yielded so far: once > 0, failures are no longer retried
        while True:
            attempt += 1
            body = self.body(request)
            continuing = self._server_continues is None and body.get("continue_final_message") is True
            try:
                response = await self._send(client, body, attempt)
            except _Retryable as retry:
                await self._wait_or_raise(retry, attempt)
                continue
            try:
                if response.status_code >= 400:
                    await self._raise_status(response, continuing)
                    attempt -= 1  # the server rejected continue_final_message: re-ask at once, not a retry
                    continue
                if continuing:
                    self._server_continues = True
                async with contextlib.aclosing(self._chunks(response, request, delivered)) as chunks:
                    async for chunk in chunks:
                        delivered += len(chunk.text)
                        yield chunk
                return
            except _Retryable as retry:
                await self._wait_or_raise(retry, attempt)
            finally:
                with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await response.aclose()

    async def _send(self, client: httpx.AsyncClient, body: dict[str, Any], attempt: int) -> httpx.Response:
        try:
            http_request = client.build_request("POST", self.url, content=_json_bytes(body, self.shown_url),
                                                headers={"Content-Type": "application/json", **self._headers})
            return await client.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"no answer within the timeout ({type(exc).__name__})", error=exc) from None
        except httpx.TransportError as exc:
            raise _Retryable(redact_text(f"{type(exc).__name__}: {exc}", self.url), error=exc) from None

    async def _wait_or_raise(self, retry: _Retryable, attempt: int) -> None:
        if isinstance(retry.error, ServerError) and attempt > self.retries:
            error = retry.error
            raise ServerError(f"{error} (after {attempt} attempt{'s' * (attempt > 1)})", status=error.status,
                              server_message=error.server_message, url=error.url)
        if attempt > self.retries:
            raise ServerUnavailable(f"POST {self.shown_url} failed after {attempt} attempt{'s' * (attempt > 1)}: "
                                    f"{retry.reason}", attempts=attempt, url=self.shown_url) from retry.error
        delay = self._delay(attempt, retry.delay)
        from interlock.monitor.logs import get_logger

        get_logger(backend="openai_compat").warning("retrying", url=self.shown_url, attempt=attempt,
                                                    reason=retry.reason, delay=round(delay, 3))
        await anyio.sleep(delay)

    async def _raise_status(self, response: httpx.Response, continuing: bool) -> None:
        """Raise the error an error status means; return only when a re-ask without vLLM's fields is due."""
        raw = bytearray()
        try:
            async for data in response.aiter_bytes():
                raw += data
                if len(raw) >= _ERROR_BODY_LIMIT:
                    break
        except httpx.TransportError:
            pass  # the status says enough
        status = response.status_code
        message = redact_text(_server_message(bytes(raw)) or response.reason_phrase, self.url)
        error = ServerError(f"POST {self.shown_url} failed: HTTP {status} {response.reason_phrase}: {message}",
                            status=status, server_message=message, url=self.shown_url)
        if self._usage and status in (400, 422) and "stream_options" in message:
            self._usage = False  # an older server: count events (or with count_tokens) from now on
            from interlock.monitor.logs import get_logger

            get_logger(backend="openai_compat").warning("stream_options rejected; counting tokens without usage",
                                                        url=self.shown_url, status=status, server_message=message)
            return
        if continuing and status in (400, 422):
            self._server_continues = False
            from interlock.monitor.logs import get_logger

            get_logger(backend="openai_compat").warning(
                "continue_final_message rejected; re-asking instead", url=self.shown_url, status=status,
                fields=sorted(CONTINUE_FIELDS), server_message=message)
            return
        if status in RETRY_STATUSES:
            hint = None
            retry_after = response.headers.get("retry-after", "")
            if retry_after.replace(".", "", 1).isdigit():
                hint = float(retry_after)
            raise _Retryable(f"HTTP {status}: {message}", delay=hint, error=error)
        raise error

    async def _chunks(self, response: httpx.Response, request: GenerationRequest,
                      delivered: int) -> AsyncGenerator[Chunk, None]:
        """The chunks of one response; transport failures become ``_Retryable`` until text has arrived."""
        content_type = response.headers.get("content-type", "")
        want_entropy = self.sampling.top_logprobs > 0
        tally = _Tally(self, request)
        if content_type.startswith("application/json"):
            whole = await self._whole_answer(response)
            tally.see(whole)
            for chunk in tally.mark(to_chunks(whole), whole):
                yield tally.counted(chunk)
            for chunk in tally.end():
                yield chunk
            return
        decoder = SSEDecoder()
        reads = response.aiter_bytes()
        stops = request.stop
        produced = ""
        finished = False
        while True:
            try:
                data: bytes | None = await reads.__anext__()
            except StopAsyncIteration:
                data = None
            except httpx.TransportError as exc:
                what = ("no data within the timeout" if isinstance(exc, httpx.TimeoutException)
                        else redact_text(f"{type(exc).__name__}: {exc}", self.url))
                if delivered == 0:
                    raise _Retryable(what, error=exc) from None
                raise StreamInterrupted(f"the stream from {self.shown_url} broke after {delivered} characters: {what}",
                                        received=delivered) from exc
            events = decoder.feed(data) if data is not None else decoder.close()
            for event in events:
                if event.data.strip() == "[DONE]":
                    for chunk in tally.end():
                        yield chunk
                    return
                if event.event not in ("message", "error"):
                    continue
                try:
                    obj = json.loads(event.data)
                except (ValueError, RecursionError) as exc:
                    excerpt = event.data if len(event.data) <= 200 else event.data[:200] + "..."
                    raise MalformedStream(f"an event from {self.shown_url} is not JSON ({exc}): {excerpt!r}") from None
                if event.event == "error" and isinstance(obj, Mapping) and "error" not in obj:
                    obj = {"error": obj}
                delta = parse_event(obj, self.endpoint, want_entropy=want_entropy)
                if delta is None:
                    continue
                tally.see(delta)
                finished = finished or delta.finish_reason is not None
                for chunk in tally.mark(to_chunks(delta), delta):
                    if stops:
                        chunk, hit = self._stop_at(chunk, produced, stops)
                        produced += chunk.text
                        if chunk.text:
                            delivered += len(chunk.text)
                            yield tally.counted(chunk)
                        if hit:
                            return
                        continue
                    delivered += len(chunk.text)
                    yield tally.counted(chunk)
            if data is None:
                break
        if not finished:
            what = "the server closed the stream before it said it was done (no finish_reason, no [DONE])"
            if delivered == 0:
                raise _Retryable(what)
            raise StreamInterrupted(f"{what}; {delivered} characters had arrived from {self.shown_url}",
                                    received=delivered)
        for chunk in tally.end():
            yield chunk

    @staticmethod
    def _stop_at(chunk: Chunk, produced: str, stops: tuple[str, ...]) -> tuple[Chunk, bool]:
        """Cut ``chunk`` before the first stop string that ``produced + chunk.text`` holds, so that servers that
        do not apply ``stop`` themselves behave like those that do. (A stop string split across chunks leaves
        its first part, already delivered, in the trace.)"""
        window_start = max(0, len(produced) - max(len(s) for s in stops) + 1)
        text = produced[window_start:] + chunk.text
        found = [i for s in stops if (i := text.find(s)) >= 0]
        if not found:
            return chunk, False
        keep = max(0, min(found) - (len(produced) - window_start))
        return Chunk(chunk.text[:keep]), True

    async def _whole_answer(self, response: httpx.Response) -> Delta:
        """A server that ignored ``stream: true`` and sent one JSON answer: its text as one delta."""
        raw = bytearray()
        async for data in response.aiter_bytes():
            raw += data
            if len(raw) > _JSON_BODY_LIMIT:
                raise MalformedStream(f"the JSON answer from {self.shown_url} is larger than {_JSON_BODY_LIMIT} bytes")
        try:
            obj = json.loads(bytes(raw))
        except ValueError as exc:
            raise MalformedStream(f"the answer from {self.shown_url} is not JSON ({exc}): "
                                  f"{bytes(raw[:200])!r}") from None
        choices = obj.get("choices") if isinstance(obj, Mapping) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise MalformedStream(f"the answer from {self.shown_url} has no choices: {bytes(raw[:200])!r}")
        choice = choices[0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, Mapping) else choice.get("text")
        calls = message.get("tool_calls") if isinstance(message, Mapping) else None
        if text is None and isinstance(calls, list) and calls:
            text = ""
        if not isinstance(text, str):
            raise MalformedStream(f"the answer from {self.shown_url} has no text in choices[0]: {bytes(raw[:200])!r}")
        usage = parse_event({"choices": [], "usage": obj.get("usage")}, self.endpoint)
        return Delta(text, finish_reason=str(choice.get("finish_reason") or "stop"),
                     tool_calls=tuple(calls) if isinstance(calls, list) else (),
                     usage=usage.usage if usage is not None else None)


class _Tally:
    """Counts one response's tokens and collects its tool calls: each chunk counts as its logprobs' tokens, else
    as ``count_tokens`` says, else as one event; the server's ``usage`` at the end corrects the total upwards
    (on the tool-call chunk, or on an empty chunk), and the calls come out whole in one chunk."""

    def __init__(self, generator: OpenAICompatible, request: GenerationRequest) -> None:
        self.generator = generator
        self.main = request.purpose == "main"
        self.last = request.prefix[-1:]
        self.counted_tokens = 0
        self.usage: Usage | None = None
        self.calls = ToolCallAssembler()
        self.length = False  # the server stopped at its max_tokens: the answer may end mid-sentence
        self.marked = False  # ... and the chunk that said so was the last one yielded

    def see(self, delta: Delta) -> None:
        if delta.finish_reason is not None:
            self.length = delta.finish_reason == "length"
        if delta.tool_calls:
            self.calls.feed(delta.tool_calls)
        if delta.usage is not None:
            self.usage = delta.usage

    def mark(self, chunks: list[Chunk], delta: Delta) -> list[Chunk]:
        """The last text chunk of the delta that says the server stopped at its own limit carries
        ``finish_reason="length"`` (a chunk yielded after it, in :meth:`end`, carries it instead)."""
        if delta.finish_reason == "length" and chunks:
            chunks[-1] = dataclasses.replace(chunks[-1], finish_reason="length")
            self.marked = True
        elif chunks:
            self.marked = False
        return chunks

    def counted(self, chunk: Chunk) -> Chunk:
        if chunk.text:
            self.last = chunk.text[-1]
        count = self.generator.count_tokens
        if chunk.logprobs is None and count is not None and chunk.text:
            chunk = dataclasses.replace(chunk, tokens=max(1, int(count(chunk.text))))
        self.counted_tokens += chunk.n_tokens
        return chunk

    def end(self) -> list[Chunk]:
        """What follows the last text: the tool calls, the tokens the server counted beyond ours, and on a stop
        at the server's own limit a last chunk saying so (``finish_reason="length"``: the run is cut)."""
        chunks = self._corrections()
        if self.length:
            if chunks:
                chunks[-1] = dataclasses.replace(chunks[-1], finish_reason="length")
            elif not self.marked:
                chunks = [Chunk("", tokens=0, finish_reason="length")]
        return chunks

    def _corrections(self) -> list[Chunk]:
        usage = self.usage
        if usage is not None and self.main and usage.prompt_tokens is not None:
            self.generator.prompt_tokens = usage.prompt_tokens
        missing = None
        if usage is not None and usage.completion_tokens is not None:
            missing = max(0, usage.completion_tokens - self.counted_tokens)
        calls: list[ToolCallRequest] = self.calls.calls() if self.calls else []
        if calls:
            chunk = tool_calls_chunk(calls, after=self.last)
            if missing is None:
                count = self.generator.count_tokens
                missing = max(1, int(count(chunk.text))) if count is not None else len(calls)
            return [dataclasses.replace(chunk, tokens=missing)]
        if missing:
            return [Chunk("", tokens=missing)]
        return []
