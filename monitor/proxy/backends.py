"""Where the proxy's text comes from: any :class:`~monitor.Generator` (a local model, a script) or an upstream
OpenAI-compatible server, turned into a generator and a prompt for each request.

A backend answers ``prepare(request)`` with a :class:`Prepared`: the generator for this request (stop strings
applied, upstream errors remembered so the proxy can pass their status through) and the prompt text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from interlock.monitor.agents.agent import StopAt, transcript
from interlock.monitor.chunks import Chunk, ToolCallRequest
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities, GenerationRequest, Generator
from interlock.monitor.proxy.models import ChatMessage, ChatRequest, CompletionRequest, ProxyError
from interlock.monitor.urls import api_root, join_url, redact_text, redact_url

if TYPE_CHECKING:
    from interlock.monitor.proxy.responses_request import ResponsesRequest

__all__ = ["Backend", "GeneratorBackend", "Prepared", "RequestGenerator", "ResponsesRoute", "UpstreamBackend",
           "chat_template_of"]

ChatFormat = Callable[[Sequence[ChatMessage]], str]
# How /v1/responses reaches an upstream: over chat completions, its own /v1/responses, or chat falling back to it
ResponsesRoute = Literal["auto", "chat", "responses"]


class RequestGenerator:
    """One request's view of a shared generator: stop strings, sampling fields in ``meta``, the first error
    the backend raised (``error``), whose ``status`` the proxy answers with, and the tool calls it emitted
    (``tool_markers``: each call's marker line, which the request's tool-call checks look up)."""

    def __init__(self, generator: Generator, *, stop: Sequence[str] = (), meta: dict[str, object] | None = None,
                 rewrite: Callable[[GenerationRequest], GenerationRequest] | None = None) -> None:
        self.base = generator
        self.inner: Generator = StopAt(generator, stop) if stop else generator
        self.meta = dict(meta or {})
        self.rewrite = rewrite
        self.error: BaseException | None = None
        self.tool_markers: dict[str, ToolCallRequest] = {}

    @property
    def prompt_tokens(self) -> int | None:
        """The prompt's tokens as the backend counted them (an upstream's ``usage``), when it did."""
        value = getattr(self.base, "prompt_tokens", None)
        return value if isinstance(value, int) else None

    @property
    def reasoning_field(self) -> str | None:
        """The field the backend's server sent the thinking in (``reasoning`` or ``reasoning_content``), once it
        did; ``None`` when it sent none (a thinking in the text, between tags, stays in the text)."""
        value = getattr(self.base, "reasoning_field", None)
        return value if isinstance(value, str) else None

    @property
    def capabilities(self) -> Capabilities:
        caps = getattr(self.inner, "capabilities", None)
        return caps if isinstance(caps, Capabilities) else Capabilities()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self.meta:
            request = dataclasses.replace(request, meta={**request.meta, **self.meta})
        if self.rewrite is not None:
            request = self.rewrite(request)
        stream = self.inner.stream(request)
        try:
            async for chunk in stream:
                for call in chunk.tool_calls:
                    self.tool_markers[call.marker()] = call
                yield chunk
        except Exception as exc:
            if self.error is None:
                self.error = exc
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()


@dataclass
class Prepared:
    generator: RequestGenerator
    prompt: str
    prompt_tokens: int | None = None  # counted locally (a local tokenizer), else the upstream's usage says


def _local_count(generator: Any, prompt: str) -> int | None:
    """The prompt's tokens by the generator's own tokenizer, when it has one."""
    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is not None and callable(getattr(tokenizer, "encode", None)):
        try:
            return len(tokenizer.encode(prompt, add_special_tokens=False))
        except Exception:
            return None
    count = getattr(generator, "count_tokens", None)
    if callable(count):
        return int(count(prompt))
    return None


class Backend(Protocol):
    """What the proxy forwards to."""

    @property
    def models(self) -> Sequence[str]: ...

    def prepare(self, request: ChatRequest | CompletionRequest) -> Prepared: ...

    async def aclose(self) -> None: ...


def chat_template_of(generator: Any, kwargs: Mapping[str, Any] | None = None) -> ChatFormat | None:
    """The chat template of a generator that has a tokenizer with one (``generators.Transformers``), else None;
    ``kwargs``: the template's switches (``{"enable_thinking": False}``)."""
    tokenizer = getattr(generator, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    switches = dict(kwargs or {})

    def render(messages: Sequence[ChatMessage]) -> str:
        rendered = tokenizer.apply_chat_template([m.to_dict() for m in messages], tokenize=False,
                                                 add_generation_prompt=True, **switches)
        return str(rendered)

    return render


def _sampling(request: ChatRequest | CompletionRequest) -> dict[str, object]:
    return {k: v for k, v in (("temperature", request.temperature), ("top_p", request.top_p),
                              ("seed", request.seed)) if v is not None}


class GeneratorBackend:
    """Serves requests from one generator (``generators.Transformers``, ``generators.Scripted``, ...).

    Chat messages become a prompt with ``chat_format`` (default: the generator's tokenizer chat template when it
    has one, else a plain transcript); with ``continue_final_message`` the last assistant message is continued, so
    another interlock proxy (or ``generators.OpenAICompatible``) can roll back through this one. ``model`` is the
    id ``/v1/models`` lists; requests may name any model.

    Tools: a request with ``tools`` is served only by a generator that emits tool calls itself
    (``capabilities.tool_calls``, e.g. a scripted one); the local ``Transformers`` backend does not parse its
    model's tool-call format, so tool-using agents go through an upstream server (``UpstreamBackend``).
    """

    def __init__(self, generator: Generator, *, model: str = "interlock", chat_format: ChatFormat | None = None,
                 close: Callable[[], Any] | None = None) -> None:
        self.generator = generator
        self.model = model
        self._templated = chat_format is None and chat_template_of(generator) is not None
        self.chat_format = chat_format or chat_template_of(generator) or _transcript
        self._close = close

    @property
    def models(self) -> Sequence[str]:
        return [self.model]

    def prepare(self, request: ChatRequest | CompletionRequest) -> Prepared:
        if isinstance(request, CompletionRequest):
            prompt = request.prompt
        else:
            if request.tools and not _capabilities(self.generator).tool_calls:
                raise ProxyError(400, "this proxy serves a local model that does not emit tool calls; send requests "
                                 "with tools to a proxy in front of an OpenAI-compatible server (--base-url)",
                                 param="tools")
            response_format = request.forward.get("response_format")
            if isinstance(response_format, dict) and response_format.get("type") != "text":
                raise ProxyError(400, "this proxy serves a local model, which cannot be held to a response_format; "
                                 "send it to a proxy in front of a server that enforces one (--base-url)",
                                 param="response_format")
            render = self.chat_format
            switches = request.forward.get("chat_template_kwargs")
            if switches and self._templated:  # the client's switches (enable_thinking ...) for the model's template
                render = chat_template_of(self.generator, switches) or render
            if request.continue_final:  # the answer goes on inside the client's last assistant message
                prompt = render(request.messages[:-1]) + request.messages[-1].content
            else:
                prompt = render(request.messages)
        meta = _sampling(request)
        if isinstance(request, ChatRequest) and request.tools:
            meta["tools"] = [dict(t) for t in request.tools]
        return Prepared(RequestGenerator(self.generator, stop=request.stop, meta=meta), prompt,
                        _local_count(self.generator, prompt))

    async def aclose(self) -> None:
        if self._close is not None:
            result = self._close()
            if hasattr(result, "__await__"):
                await result


def _capabilities(generator: Any) -> Capabilities:
    caps = getattr(generator, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else Capabilities()


def _transcript(messages: Sequence[ChatMessage]) -> str:
    return transcript([m.to_dict() for m in messages])


class UpstreamBackend:
    """Forwards to an OpenAI-compatible server through ``generators.OpenAICompatible`` (one per request, all
    sharing one HTTP connection pool).

    Completions requests go to the server's ``/v1/completions`` with the client's prompt. Chat requests go to its
    ``/v1/chat/completions`` with the client's whole conversation, followed (after a rollback) by the corrected
    answer so far as the assistant message the generator continues. ``model`` replaces the model the client names
    (``None``: pass the client's through).
    """

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, options: dict[str, Any] | None = None,
                 responses: ResponsesRoute = "auto") -> None:
        import httpx
        from interlock.monitor.proxy.responses_upstream import StoredResponses

        if responses not in ("auto", "chat", "responses"):
            raise ConfigError(f"responses must be 'auto', 'chat' or 'responses', got {responses!r}")
        self.responses = responses
        self.stored = StoredResponses()  # the proxy's response ids -> the upstream's (previous_response_id)
        self._responses_only: set[str] = set()  # models the upstream serves over /v1/responses only (auto)

        self.api_root = api_root(base_url)
        self.base_url = base_url
        self.shown_url = redact_url(base_url)  # for messages, logs and the banner: no credentials
        self.model = model
        self.api_key = api_key
        self.options = dict(options or {})
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0),
                                         limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))

    @property
    def models(self) -> Sequence[str]:
        return [self.model] if self.model else []

    async def list_models(self) -> list[str]:
        """The configured model, or the upstream's own list."""
        if self.model:
            return [self.model]
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = await self._client.get(join_url(self.api_root, "models"), headers=headers)
        response.raise_for_status()
        return [str(m["id"]) for m in response.json().get("data", []) if isinstance(m, dict) and "id" in m]

    def _generator(self, request: ChatRequest | CompletionRequest, endpoint: str) -> Any:
        options: dict[str, Any] = {"max_tokens": None, **self.options}
        for name in ("temperature", "top_p", "seed"):
            value = getattr(request, name)
            if value is not None:
                options[name] = value
        model = self.model or request.model
        if isinstance(request, CompletionRequest):
            from interlock.generators import OpenAICompatible

            return OpenAICompatible(self.base_url, model, endpoint="completions", api_key=self.api_key,
                                    client=self._client, **options)
        conversation = [m.to_dict() for m in request.messages]
        extra = {**options.pop("extra_body", {}), **request.tool_fields()}
        from interlock.generators import OpenAICompatible

        return OpenAICompatible(self.base_url, model, endpoint="chat", api_key=self.api_key, client=self._client,
                                messages=conversation, extra_body=extra, **options)

    def redact(self, text: str) -> str:
        """``text`` without the credentials of the base URL (for anything a client or a log may see)."""
        return redact_text(text, self.base_url)

    def _responses_generator(self, request: ResponsesRequest, previous: str | None) -> Any:
        from interlock.monitor.proxy.responses_upstream import ResponsesUpstream

        options: dict[str, Any] = {"max_tokens": None, **self.options}
        options.pop("extra_body", None)
        for name in ("temperature", "top_p"):
            value = getattr(request.chat, name)
            if value is not None:
                options[name] = value
        return ResponsesUpstream(self.base_url, self.model or request.model, fields=request.body,
                                 items=[dict(i) for i in request.input], previous=previous, api_key=self.api_key,
                                 client=self._client, **options)

    def prepare_responses(self, request: ResponsesRequest) -> Prepared:
        """A ``/v1/responses`` request: translated to chat completions, or forwarded to the upstream's
        ``/v1/responses`` (``responses="responses"``; with ``"auto"``, when the upstream serves the model over
        chat completions with a 404 or 405, or when the request continues a stored response)."""
        route = self.responses
        previous = None
        if request.previous_response_id is not None:
            if route == "chat":
                raise ProxyError(400, "previous_response_id needs state the upstream keeps, and this proxy serves "
                                 "the Responses API over chat completions, which keep none (--responses-upstream "
                                 "chat): send the whole conversation in input", param="previous_response_id")
            previous = self.stored.get(request.previous_response_id)
            if previous is None:
                raise ProxyError(400, f"previous_response_id {request.previous_response_id[:80]!r} is not a response "
                                 "this proxy answered from an upstream that stores it (or it was forgotten, or "
                                 "another worker answered it): send the whole conversation in input",
                                 param="previous_response_id")
            route = "responses"
        model = self.model or request.model
        users = [m.content for m in request.chat.messages if m.role == "user"]
        prompt = users[-1] if users else ""
        if route == "responses" or model in self._responses_only:
            gen: Any = self._responses_generator(request, previous)
        else:
            chat = self._generator(request.chat, "chat")
            gen = chat
            if route == "auto":
                from interlock.monitor.proxy.responses_upstream import AutoUpstream

                gen = AutoUpstream(chat, lambda: self._responses_generator(request, None),
                                   lambda: self._responses_only.add(model))
        return Prepared(RequestGenerator(gen), prompt)

    def remember(self, response_id: str, prepared: Prepared) -> None:
        """Keep the upstream's id of the last response a forwarded request got, under the proxy's id."""
        base = prepared.generator.base
        upstream = getattr(getattr(base, "generator", base), "last_response_id", None)
        if isinstance(upstream, str) and upstream:
            self.stored.remember(response_id, upstream)

    def prepare(self, request: ChatRequest | CompletionRequest) -> Prepared:
        gen = self._generator(request, "completions" if isinstance(request, CompletionRequest) else "chat")
        if isinstance(request, CompletionRequest):
            return Prepared(RequestGenerator(gen, stop=request.stop), request.prompt)
        users = [m.content for m in request.messages if m.role == "user"]
        return Prepared(RequestGenerator(gen, stop=request.stop), users[-1] if users else "")

    async def aclose(self) -> None:
        await self._client.aclose()
