"""Serving the proxy with uvicorn: in the foreground (``interlock proxy``), as several worker processes behind one
port (:func:`serve_workers`), or in the background of a running event loop (tests, notebooks, an agent that
starts its own proxy).

uvicorn closes idle keep-alive connections but waits forever for a request whose headers never finish (a slow
client, or a slowloris attack); the servers here use
:class:`~interlock.monitor.proxy.h11_timeout.HeaderTimeoutH11`, which closes such a connection after
``header_timeout`` seconds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["DEFAULT_HEADER_TIMEOUT", "forget_workers", "free_port", "serve", "serve_workers", "serving"]

DEFAULT_HEADER_TIMEOUT = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _http_protocol() -> Any:
    from interlock.monitor.proxy.h11_timeout import HeaderTimeoutH11

    return HeaderTimeoutH11


def _config(app: Any, host: str, port: int, log_level: str, header_timeout: float, **options: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=5, http=_http_protocol(), **options)
    config.header_timeout = header_timeout  # type: ignore[attr-defined]  # read by HeaderTimeoutH11 (and pickled to workers with the config)
    return config


def _server(app: Any, host: str, port: int, log_level: str, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
            **options: Any) -> Any:
    import uvicorn

    return uvicorn.Server(_config(app, host, port, log_level, header_timeout, **options))


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          header_timeout: float = DEFAULT_HEADER_TIMEOUT, **options: Any) -> None:
    """Serve ``app`` until interrupted (Ctrl-C)."""
    _server(app, host, port, log_level, header_timeout, **options).run()


def serve_workers(factory: str, workers: int, *, host: str = "127.0.0.1", port: int = 8000,
                  log_level: str = "info", header_timeout: float = DEFAULT_HEADER_TIMEOUT, **options: Any) -> None:
    """Serve the app that ``factory`` (``"module:function"``) makes, in ``workers`` processes sharing one
    listening socket; each worker makes its own app and monitors the requests it accepts."""
    config = _config(factory, host, port, log_level, header_timeout, factory=True, workers=workers, **options)
    sock = config.bind_socket()
    _supervisor_class()(config, sockets=[sock]).run()


def forget_workers(pids: Iterable[int]) -> None:
    """Tell prometheus-client's multiprocess mode that these worker processes are gone, so that their live gauges
    (``requests_in_flight``) stop counting: a worker killed mid-request (SIGKILL, out of memory) never got to
    lower its own. Nothing to do without ``$PROMETHEUS_MULTIPROC_DIR`` or prometheus-client."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    for pid in pids:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _supervisor_class() -> Any:
    """uvicorn's ``Multiprocess`` supervisor, which also forgets the figures of every worker it replaces (one that
    died, or one retired by a restart)."""
    from uvicorn.supervisors import Multiprocess

    class Supervisor(Multiprocess):
        def _replacing(self, step: Any) -> None:
            before = {p.pid for p in self.processes}
            step()
            gone = before - {p.pid for p in self.processes}
            forget_workers(pid for pid in gone if pid is not None)

        def keep_subprocess_alive(self) -> None:
            self._replacing(super().keep_subprocess_alive)

        def restart_all(self) -> None:
            self._replacing(super().restart_all)

    return Supervisor


@asynccontextmanager
async def serving(app: Any, *, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning",
                  startup_timeout: float = 30.0, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                  **options: Any) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn in this event loop for the duration of the block; yields its base URL
    (``http://127.0.0.1:PORT``). The server shuts down when the block ends."""
    server = _server(app, host, port or free_port(host), log_level, header_timeout, **options)
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
