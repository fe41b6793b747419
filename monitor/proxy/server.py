"""Serving the proxy with uvicorn: in the foreground (``interlock proxy``) or in the background of a running event
loop (tests, notebooks, an agent that starts its own proxy)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["free_port", "serve", "serving"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _server(app: Any, host: str, port: int, log_level: str, **options: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=5, **options)
    return uvicorn.Server(config)


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **options: Any) -> None:
    """Serve ``app`` until interrupted (Ctrl-C)."""
    _server(app, host, port, log_level, **options).run()


@asynccontextmanager
async def serving(app: Any, *, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning",
                  startup_timeout: float = 30.0, **options: Any) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn in this event loop for the duration of the block; yields its base URL
    (``http://127.0.0.1:PORT``). The server shuts down when the block ends."""
    server = _server(app, host, port or free_port(host), log_level, **options)
    server.config.setup_event_loop = lambda: None
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(startup_timeout):
            while not server.started:
                if server.should_exit:
                    raise RuntimeError(f"the proxy could not start on {host}:{server.config.port}")
                await anyio.sleep(0.01)
        try:
            yield f"http://{host}:{server.config.port}"
        except Exception as exc:  # re-raised as is below, not wrapped in an exception group
            failure = exc
        finally:
            server.should_exit = True
    if failure is not None:
        raise failure
