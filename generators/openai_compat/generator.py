"""``OpenAICompatible``: stream one trace from an OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp,
``transformers serve``, OpenAI) with httpx.

Each ``stream(request)`` is one streaming POST; a rollback or a fork is just another request that carries the trace
so far (see :mod:`interlock.generators.openai_compat.payloads` for exactly what is sent). Failures before the first
token (connection refused or reset, timeouts, 408/429/5xx) are retried with exponential backoff; after text has been
delivered they raise :class:`~interlock.generators.errors.StreamInterrupted`, since a retry would deliver it twice.
Other 4xx answers raise :class:`~interlock.generators.errors.ServerError` at once, naming the status and the
server's message. Cancelling the consumer closes the response, which tells the server to stop generating.

Reasoning models: the thinking is read from ``delta.reasoning`` / ``delta.reasoning_content`` (streamed) and
``message.reasoning`` / ``message.reasoning_content`` (whole), or split off raw text at thinking tags (the
completions endpoint, a chat server without a reasoning parser), and every chunk says its phase. A request that
continues inside the thinking (a rollback or a fork into it) goes over the completions endpoint with the chat
template rendered here (``chat_template=``), or as a chat prefill (``thinking_continuation="prefill"``), or fails
with :class:`~interlock.generators.errors.ThinkingNotContinuable` naming what is missing: never a silent restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.lowlevel
import httpx
from interlock import Capabilities, Chunk, ConfigError, GenerationRequest
from interlock.generators.errors import (
    MalformedStream,
    ServerError,
    ServerUnavailable,
    StreamInterrupted,
    ThinkingNotContinuable,
)
from interlock.generators.openai_compat.deltas import (
    Delta,
    Endpoint,
    ToolCallAssembler,
    Usage,
    parse_event,
    reasoning_of,
    to_chunks,
)
from interlock.generators.openai_compat.payloads import (
    CONTINUE_FIELDS,
    DEFAULT_CONTINUE_INSTRUCTION,
    THINKING_BUDGET_FIELDS,
    Sampling,
    chat_body,
    chat_shape,
    completions_body,
    thinking_budget_fields,
)
from interlock.generators.openai_compat.sse import SSEDecoder
from interlock.generators.openai_compat.templates import ChatTemplate, render_prefix
from interlock.generators.openai_compat.tls import ssl_context_for
from interlock.monitor.chunks import ToolCallRequest, tool_calls_chunk
from interlock.monitor.phases import ANSWER, THINK_TAGS, THINKING, THOUGHT_TAGS, Phase, ThinkingTags
from interlock.monitor.textout import scrub
from interlock.monitor.thinking import TagSplitter
from interlock.monitor.urls import api_root, join_url, redact_text, redact_url

__all__ = ["OpenAICompatible"]

ThinkingContinuation = Literal["auto", "completions", "prefill"]
ThinkingBudgetServer = Literal["vllm", "sglang", "llama.cpp"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_RESERVED = frozenset({"model", "stream", "prompt", "messages"})
_ERROR_BODY_LIMIT = 64 * 1024
_JSON_BODY_LIMIT = 16 * 1024 * 1024
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class _Plan:
    """One request: where it goes, what it sends, how its answer reads, and the phase the answer starts in."""

    url: str
    body: dict[str, Any]
    parse: Endpoint
    thinking: bool  # the answer starts inside a thinking (a continuation of one, or a prompt that opened it)


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
    - ``messages``: the chat messages before the answer (a client's whole conversation, as the proxy sends it),
      instead of ``[system?, user: prompt]``; the trace is the answer that follows them.
    - Reasoning models (see the README's "Reasoning models"): ``thinking_tags`` (default ``<think>`` and
      ``<|begin_of_thought|>``; ``None`` for none) split raw text and content at thinking tags;
      ``prompt_opens_thinking`` says the server's template opens the thinking itself (the answer starts inside it;
      default: found in a raw prompt, no for chat); ``chat_template`` (a tokenizer folder, a ``.jinja`` file or
      the template text) renders the prompt here, so a continuation inside the thinking goes over
      ``/v1/completions``; ``chat_template_kwargs`` (e.g. ``{"enable_thinking": True}``) are sent with chat
      requests and used in that rendering; ``thinking_continuation``: ``"completions"`` (needs the template),
      ``"prefill"`` (a final assistant message holding the open thinking) or ``"auto"`` (the former when there is
      a template, else the latter when the server continues final messages, else
      :class:`~interlock.generators.errors.ThinkingNotContinuable`); ``thinking_budget``: ``"vllm"``,
      ``"sglang"`` or ``"llama.cpp"`` passes a thinking budget (``request.max_thinking_tokens``) in that server's
      request field.
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
                 count_tokens: Callable[[str], int] | None = None,
                 thinking_tags: ThinkingTags | str | Sequence[Any] | None = (THINK_TAGS, THOUGHT_TAGS),
                 prompt_opens_thinking: bool | None = None,
                 chat_template: ChatTemplate | str | os.PathLike[str] | None = None,
                 chat_template_kwargs: Mapping[str, Any] | None = None,
                 thinking_continuation: ThinkingContinuation = "auto",
                 thinking_budget: ThinkingBudgetServer | None = None,
                 messages: Sequence[Mapping[str, Any]] | None = None) -> None:
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
        if messages is not None and (isinstance(messages, str | bytes) or not all(
                isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in messages)):
            raise ConfigError("messages must be a list of chat messages, each a mapping with a 'role'")
        self.messages = [dict(m) for m in messages] if messages is not None else None
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
        self.tags = _tag_pairs(thinking_tags)
        self.prompt_opens_thinking = prompt_opens_thinking
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        if chat_template is not None and not isinstance(chat_template, ChatTemplate):
            chat_template = ChatTemplate(chat_template, kwargs=self.chat_template_kwargs)
        self.chat_template = chat_template
        if thinking_continuation not in ("auto", "completions", "prefill"):
            raise ConfigError(f"thinking_continuation must be 'auto', 'completions' or 'prefill', got "
                              f"{thinking_continuation!r}")
        if thinking_continuation == "completions" and chat_template is None and endpoint == "chat":
            raise ConfigError("thinking_continuation='completions' needs chat_template= (the model's tokenizer folder, "
                              "a .jinja file or the template text) to render the prompt for /v1/completions")
        self.thinking_continuation = thinking_continuation
        if thinking_budget is not None and thinking_budget not in THINKING_BUDGET_FIELDS:
            raise ConfigError(f"thinking_budget must be one of {', '.join(THINKING_BUDGET_FIELDS)} or None, got "
                              f"{thinking_budget!r}")
        self.thinking_budget = thinking_budget
        self.reasoning_field: str | None = None  # the field the server sent the thinking in, once seen
        self.last_usage: Usage | None = None  # the server's counts for the latest response, when it sent them

    def __repr__(self) -> str:
        return (f"OpenAICompatible({redact_url(self.api_root)!r}, {self.model!r}, endpoint={self.endpoint!r}, "
                f"continue_final_message={self.continue_final_message!r})")

    @property
    def capabilities(self) -> Capabilities:
        tags = self.tags[0] if self.tags and self.endpoint == "completions" else None
        return Capabilities(token_ids=False, logprobs=self.sampling.logprobs,
                            entropy=self.sampling.top_logprobs > 0, resumable=True, kv_rollback=False, fork=True,
                            tool_calls=self.endpoint == "chat",
                            thinking_tags=(tags.open, tags.close) if tags is not None else None,
                            thinking_budget=self.thinking_budget is not None)

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
                headers={"User-Agent": "interlock"}, verify=ssl_context_for(self.api_root))
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
        return self.plan(request).body

    def url_for(self, request: GenerationRequest) -> str:
        """Where the next request for ``request`` goes (a continuation inside the thinking may go to
        ``/completions`` although the endpoint is chat)."""
        return self.plan(request).url

    def _opens(self, prompt_text: str) -> bool:
        """Whether the answer to ``prompt_text`` starts inside a thinking: the prompt ends with an opening tag."""
        if self.prompt_opens_thinking is not None:
            return self.prompt_opens_thinking
        tail = prompt_text.rstrip()
        return any(tail.endswith(t.open) for t in self.tags)

    def _chat_messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        """The messages before the answer: ``messages=`` where given, else ``[system?, user: prompt]``."""
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": request.prompt})
        return messages

    def plan(self, request: GenerationRequest) -> _Plan:
        """The request for ``request``: the URL, the body, and the phase its answer starts in."""
        thinking_in_prefix = any(phase == THINKING for _, phase in request.phases)
        continuing_thinking = request.phase == THINKING and bool(request.prefix or request.phases)
        tags = self.tags[0] if self.tags else THINK_TAGS
        if self.endpoint == "completions":
            text = render_prefix(request.prompt, request, tags) if thinking_in_prefix else None
            body = completions_body(self.model, request, self.sampling, self.extra_body, prompt=text)
            plan = _Plan(join_url(self.api_root, "completions"), body, "completions",
                         continuing_thinking or (not request.prefix and self._opens(request.prompt)))
        elif thinking_in_prefix and self._route(continuing_thinking) == "completions":
            assert self.chat_template is not None
            rendered = self.chat_template.render(self._chat_messages(request))
            body = completions_body(self.model, request, self.sampling, self.extra_body,
                                    prompt=render_prefix(rendered, request, tags))
            plan = _Plan(join_url(self.api_root, "completions"), body, "completions", continuing_thinking)
        else:
            shape = chat_shape(request, self._server_continues is not False)
            body = chat_body(self.model, request, self.sampling, self.extra_body, shape=shape,
                             system_prompt=self.system_prompt, continue_instruction=self.continue_instruction,
                             tags=tags, opened=bool(self.prompt_opens_thinking), head=self.messages)
            if self.chat_template_kwargs:
                body.setdefault("chat_template_kwargs", dict(self.chat_template_kwargs))
            opened = not request.prefix and bool(self.prompt_opens_thinking)
            plan = _Plan(self.url, body, "chat", continuing_thinking or opened)
        if request.max_thinking_tokens is not None and self.thinking_budget is not None:
            for key, value in thinking_budget_fields(self.thinking_budget, max(0, request.max_thinking_tokens)).items():
                if isinstance(value, dict) and isinstance(plan.body.get(key), dict):
                    value = {**plan.body[key], **value}
                plan.body[key] = value
        if self._usage:
            plan.body.setdefault("stream_options", {"include_usage": True})
        return plan

    def _route(self, continuing_thinking: bool) -> Literal["completions", "prefill", "chat"]:
        """How a chat request whose prefix holds a thinking is made: over ``/completions`` with the template
        rendered here, or as a chat request (a prefill when it continues inside the thinking)."""
        mode = self.thinking_continuation
        if self.chat_template is not None and mode != "prefill":
            return "completions"
        if not continuing_thinking:
            return "chat"
        if self._server_continues is False:
            raise ThinkingNotContinuable(
                f"a rollback or fork continues inside the thinking, and {self.shown_url} cannot be asked for that: it "
                "does not continue a final assistant message (continue_final_message was rejected or is off), and "
                "re-asking would restart the thinking. Pass chat_template= (the model's tokenizer folder or chat "
                "template file) to render the prompt here and continue over /v1/completions.")
        return "prefill"

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
            plan = self.plan(request)
            continuing = self._server_continues is None and plan.body.get("continue_final_message") is True
            try:
                response = await self._send(client, plan, attempt)
            except _Retryable as retry:
                await self._wait_or_raise(retry, attempt, redact_url(plan.url))
                continue
            try:
                if response.status_code >= 400:
                    await self._raise_status(response, continuing, redact_url(plan.url))
                    attempt -= 1  # the server rejected continue_final_message: re-ask at once, not a retry
                    continue
                if continuing:
                    self._server_continues = True
                async with contextlib.aclosing(self._chunks(response, request, delivered, plan)) as chunks:
                    async for chunk in chunks:
                        delivered += len(chunk.text)
                        yield chunk
                return
            except _Retryable as retry:
                await self._wait_or_raise(retry, attempt, redact_url(plan.url))
            finally:
                with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await response.aclose()

    async def _send(self, client: httpx.AsyncClient, plan: _Plan, attempt: int) -> httpx.Response:
        try:
            http_request = client.build_request("POST", plan.url, content=_json_bytes(plan.body, redact_url(plan.url)),
                                                headers={"Content-Type": "application/json", **self._headers})
            return await client.send(http_request, stream=True)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"no answer within the timeout ({type(exc).__name__})", error=exc) from None
        except httpx.TransportError as exc:
            raise _Retryable(redact_text(f"{type(exc).__name__}: {exc}", self.url), error=exc) from None

    async def _wait_or_raise(self, retry: _Retryable, attempt: int, url: str) -> None:
        if isinstance(retry.error, ServerError) and attempt > self.retries:
            error = retry.error
            raise ServerError(f"{error} (after {attempt} attempt{'s' * (attempt > 1)})", status=error.status,
                              server_message=error.server_message, url=error.url)
        if attempt > self.retries:
            raise ServerUnavailable(f"POST {url} failed after {attempt} attempt{'s' * (attempt > 1)}: "
                                    f"{retry.reason}", attempts=attempt, url=url) from retry.error
        delay = self._delay(attempt, retry.delay)
        from interlock.monitor.logs import get_logger

        get_logger(backend="openai_compat").warning("retrying", url=url, attempt=attempt, reason=retry.reason,
                                                    delay=round(delay, 3))
        await anyio.sleep(delay)

    async def _raise_status(self, response: httpx.Response, continuing: bool, url: str) -> None:
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
        error = ServerError(f"POST {url} failed: HTTP {status} {response.reason_phrase}: {message}",
                            status=status, server_message=message, url=url)
        if self._usage and status in (400, 422) and "stream_options" in message:
            self._usage = False  # an older server: count events (or with count_tokens) from now on
            from interlock.monitor.logs import get_logger

            get_logger(backend="openai_compat").warning("stream_options rejected; counting tokens without usage",
                                                        url=url, status=status, server_message=message)
            return
        if continuing and status in (400, 422):
            self._server_continues = False
            from interlock.monitor.logs import get_logger

            get_logger(backend="openai_compat").warning(
                "continue_final_message rejected; re-asking instead", url=url, status=status,
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
                      delivered: int, plan: _Plan) -> AsyncGenerator[Chunk, None]:
        """The chunks of one response; transport failures become ``_Retryable`` until text has arrived."""
        content_type = response.headers.get("content-type", "")
        want_entropy = self.sampling.top_logprobs > 0
        tally = _Tally(self, request, THINKING if plan.thinking else ANSWER)
        phases = _PhaseReader(self.tags, thinking=plan.thinking)
        url = redact_url(plan.url)  # for messages: no user, password or query values
        if content_type.startswith("application/json"):
            whole = await self._whole_answer(response, plan)
            tally.see(whole)
            for chunk in phases.read(tally.mark(to_chunks(whole), whole)) + phases.flush():
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
                raise StreamInterrupted(f"the stream from {url} broke after {delivered} characters: {what}",
                                        received=delivered) from exc
            events = decoder.feed(data) if data is not None else decoder.close()
            for event in events:
                if event.data.strip() == "[DONE]":
                    for chunk in [*(tally.counted(c) for c in phases.flush()), *tally.end()]:
                        yield chunk
                    return
                if event.event not in ("message", "error"):
                    continue
                try:
                    obj = json.loads(event.data)
                except (ValueError, RecursionError) as exc:
                    excerpt = event.data if len(event.data) <= 200 else event.data[:200] + "..."
                    raise MalformedStream(f"an event from {url} is not JSON ({exc}): {excerpt!r}") from None
                if event.event == "error" and isinstance(obj, Mapping) and "error" not in obj:
                    obj = {"error": obj}
                delta = parse_event(obj, plan.parse, want_entropy=want_entropy)
                if delta is None:
                    continue
                tally.see(delta)
                finished = finished or delta.finish_reason is not None
                for chunk in phases.read(tally.mark(to_chunks(delta), delta)):
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
            raise StreamInterrupted(f"{what}; {delivered} characters had arrived from {url}",
                                    received=delivered)
        for chunk in [*(tally.counted(c) for c in phases.flush()), *tally.end()]:
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
        return Chunk(chunk.text[:keep], phase=chunk.phase), True

    async def _whole_answer(self, response: httpx.Response, plan: _Plan) -> Delta:
        """A server that ignored ``stream: true`` and sent one JSON answer: its text as one delta (its thinking
        from ``message.reasoning`` or ``message.reasoning_content``)."""
        url = redact_url(plan.url)  # for messages: no user, password or query values
        raw = bytearray()
        async for data in response.aiter_bytes():
            raw += data
            if len(raw) > _JSON_BODY_LIMIT:
                raise MalformedStream(f"the JSON answer from {url} is larger than {_JSON_BODY_LIMIT} bytes")
        try:
            obj = json.loads(bytes(raw))
        except ValueError as exc:
            raise MalformedStream(f"the answer from {url} is not JSON ({exc}): {bytes(raw[:200])!r}") from None
        choices = obj.get("choices") if isinstance(obj, Mapping) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise MalformedStream(f"the answer from {url} has no choices: {bytes(raw[:200])!r}")
        choice = choices[0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, Mapping) else choice.get("text")
        calls = message.get("tool_calls") if isinstance(message, Mapping) else None
        reasoning, field = reasoning_of(dict(message), "choices[0].message") if isinstance(message, Mapping) else (
            "", None)
        if text is None and ((isinstance(calls, list) and calls) or reasoning):
            text = ""
        if not isinstance(text, str):
            raise MalformedStream(f"the answer from {url} has no text in choices[0]: {bytes(raw[:200])!r}")
        usage = parse_event({"choices": [], "usage": obj.get("usage")}, plan.parse)
        return Delta(text, finish_reason=str(choice.get("finish_reason") or "stop"),
                     tool_calls=tuple(calls) if isinstance(calls, list) else (),
                     usage=usage.usage if usage is not None else None, reasoning=reasoning, reasoning_field=field)


class _Tally:
    """Counts one response's tokens and collects its tool calls: each chunk counts as its logprobs' tokens, else
    as ``count_tokens`` says, else as one event; the server's ``usage`` at the end corrects the total upwards
    (on the tool-call chunk, or on an empty chunk), and the calls come out whole in one chunk."""

    def __init__(self, generator: OpenAICompatible, request: GenerationRequest, phase: Phase) -> None:
        self.generator = generator
        self.main = request.purpose == "main"
        self.last = request.prefix[-1:]
        self.counted_tokens = 0
        self.per_phase: dict[str, int] = {THINKING: 0, ANSWER: 0}
        self.chars: dict[str, int] = {THINKING: 0, ANSWER: 0}
        self.phase: Phase = phase  # the phase of the last text
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
        if delta.reasoning_field is not None:
            self.generator.reasoning_field = delta.reasoning_field

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
            self.phase = chunk.phase
            self.chars[chunk.phase] = self.chars.get(chunk.phase, 0) + len(chunk.text)
        count = self.generator.count_tokens
        if chunk.logprobs is None and count is not None and chunk.text and chunk.tokens != 0:
            chunk = dataclasses.replace(chunk, tokens=max(1, int(count(chunk.text))))
        self.counted_tokens += chunk.n_tokens
        self.per_phase[chunk.phase] = self.per_phase.get(chunk.phase, 0) + chunk.n_tokens
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

    def _missing(self) -> tuple[int, int] | None:
        """Tokens the server counted beyond ours, (thinking, answer): by its ``reasoning_tokens`` where it sent
        them, else shared out in proportion to each phase's text (all to the last phase when there is none)."""
        usage = self.usage
        if usage is None or usage.completion_tokens is None:
            return None
        thinking, answer = self.per_phase[THINKING], self.per_phase[ANSWER]
        if usage.reasoning_tokens is not None:
            return (max(0, usage.reasoning_tokens - thinking),
                    max(0, usage.completion_tokens - usage.reasoning_tokens - answer))
        missing = max(0, usage.completion_tokens - self.counted_tokens)
        chars = self.chars[THINKING] + self.chars[ANSWER]
        if not chars:
            return (missing, 0) if self.phase == THINKING else (0, missing)
        share = round(missing * self.chars[THINKING] / chars)
        return share, missing - share

    def _corrections(self) -> list[Chunk]:
        usage = self.usage
        self.generator.last_usage = usage
        if usage is not None and self.main and usage.prompt_tokens is not None:
            self.generator.prompt_tokens = usage.prompt_tokens
        missing = self._missing()
        more_thinking, more_answer = missing if missing is not None else (0, 0)
        out = [Chunk("", tokens=more_thinking, phase=THINKING)] if more_thinking else []
        calls: list[ToolCallRequest] = self.calls.calls() if self.calls else []
        if calls:
            chunk = tool_calls_chunk(calls, after=self.last)
            if missing is None:
                count = self.generator.count_tokens
                more_answer = max(1, int(count(chunk.text))) if count is not None else len(calls)
            return [*out, dataclasses.replace(chunk, tokens=more_answer)]
        if more_answer:
            out.append(Chunk("", tokens=more_answer))
        return out


class _PhaseReader:
    """The phase of what one response says: a server's reasoning field is thinking (and then its content is the
    answer), and raw text or content is split at thinking tags, starting inside a thinking where the request
    continued one."""

    def __init__(self, tags: tuple[ThinkingTags, ...], *, thinking: bool) -> None:
        self.splitter = TagSplitter(tags, thinking=thinking) if tags else None
        self.phase: Phase = THINKING if thinking else ANSWER

    def read(self, chunks: list[Chunk]) -> list[Chunk]:
        out: list[Chunk] = []
        splitter = self.splitter
        for chunk in chunks:
            if chunk.phase == THINKING:  # from the reasoning field: the content after it is the answer
                if splitter is not None:
                    out.extend(splitter.flush())
                    splitter.phase = ANSWER
                self.phase = ANSWER
                out.append(chunk)
            elif splitter is not None:
                out.extend(splitter.feed(chunk))
            else:
                out.append(chunk if self.phase == ANSWER or chunk.tool_calls else
                           dataclasses.replace(chunk, phase=self.phase))
        return out

    def flush(self) -> list[Chunk]:
        return self.splitter.flush() if self.splitter is not None else []


def _tag_pairs(value: ThinkingTags | str | Sequence[Any] | None) -> tuple[ThinkingTags, ...]:
    """The configured thinking tags as pairs: one pair, a string tag, a pair of strings, or a list of those."""
    if value is None:
        return ()
    if isinstance(value, ThinkingTags | str):
        return (ThinkingTags.parse(value),)
    items = list(value)
    if len(items) == 2 and all(isinstance(i, str) for i in items):
        try:
            first, second = ThinkingTags.parse(items[0]), ThinkingTags.parse(items[1])
        except ConfigError:  # ("<r>", "</r>"): the closing tag says nothing on its own
            return (ThinkingTags(items[0], items[1]),)
        if first == second:  # ("<think>", "</think>")
            return (first,)
    return tuple(ThinkingTags.parse(i) for i in items)
