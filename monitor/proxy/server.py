"""Serving the proxy with uvicorn: in the foreground (``interlock proxy``), as several worker processes behind one
port (:func:`serve_workers`), or in the background of a running event loop (tests, notebooks, an agent that
starts its own proxy).

uvicorn closes idle keep-alive connections but waits forever for a request that never finishes arriving (a slow
client, or a slowloris attack), and accepts connections until the process runs out of file descriptors; the
servers here use :class:`~interlock.monitor.proxy.h11_timeout.GuardedH11`, which closes a connection whose
request headers take longer than ``header_timeout`` seconds or whose body takes longer than ``body_timeout``, and
holds at most ``max_connections`` connections (default: :func:`default_max_connections`), closing the one that
has waited on its client the longest to make room. :func:`raise_file_limit` (called by ``interlock proxy``) lifts
the process's soft file-descriptor limit to its hard one first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_HEADER_TIMEOUT", "default_max_connections", "forget_workers", "free_port",
           "raise_file_limit", "serve", "serve_workers", "serving"]

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _http_protocol() -> Any:
    from interlock.monitor.proxy.h11_timeout import GuardedH11

    return GuardedH11


def raise_file_limit(most: int = 1 << 20) -> int:
    """Lift this process's soft limit on open files to its hard limit (at most ``most``), as servers do: the
    default soft limit (often 1,024) is what a thousand slow clients exhaust. Returns the soft limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = most if hard == resource.RLIM_INFINITY else min(hard, most)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return most if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def _file_budget() -> tuple[int, int]:
    """The connections a server may hold and the listen backlog, from the soft file-descriptor limit: a third of
    the limit (at most 4,096) is kept for the upstream's connection pool (256), files, and the connections that
    one round of accepting takes in before any is closed, which the backlog bounds (a quarter of what is left)."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    reserve = min(soft // 3, 4096)
    return max(16, soft - reserve), max(16, min(2048, (reserve - 64) // 4))


def default_max_connections() -> int:
    """The connections a server holds at most by default: the soft file-descriptor limit less a third of it (at
    most 4,096), at least 16 (1,024 files: 683 connections)."""
    return _file_budget()[0]


def _config(app: Any, host: str, port: int, log_level: str, header_timeout: float, body_timeout: float,
            max_connections: int | None, **options: Any) -> Any:
    import uvicorn

    most, backlog = _file_budget()
    options.setdefault("backlog", backlog)  # one round of accepting takes in at most this many connections
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=5, http=_http_protocol(), **options)
    # read by GuardedH11 (and pickled to the workers with the config)
    config.header_timeout = header_timeout  # type: ignore[attr-defined]
    config.body_timeout = body_timeout  # type: ignore[attr-defined]
    config.max_connections = max_connections or most  # type: ignore[attr-defined]
    return config


def _server(app: Any, host: str, port: int, log_level: str, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
            body_timeout: float = DEFAULT_BODY_TIMEOUT, max_connections: int | None = None, **options: Any) -> Any:
    import uvicorn

    return uvicorn.Server(_config(app, host, port, log_level, header_timeout, body_timeout, max_connections,
                                  **options))


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          header_timeout: float = DEFAULT_HEADER_TIMEOUT, body_timeout: float = DEFAULT_BODY_TIMEOUT,
          max_connections: int | None = None, **options: Any) -> None:
    """Serve ``app`` until interrupted (Ctrl-C)."""
    raise_file_limit()
    _server(app, host, port, log_level, header_timeout, body_timeout, max_connections, **options).run()


def serve_workers(factory: str, workers: int, *, host: str = "127.0.0.1", port: int = 8000,
                  log_level: str = "info", header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                  body_timeout: float = DEFAULT_BODY_TIMEOUT, max_connections: int | None = None,
                  **options: Any) -> None:
    """Serve the app that ``factory`` (``"module:function"``) makes, in ``workers`` processes sharing one
    listening socket; each worker makes its own app and monitors the requests it accepts (and holds at most
    ``max_connections`` connections)."""
    raise_file_limit()  # the workers inherit it
    config = _config(factory, host, port, log_level, header_timeout, body_timeout, max_connections, factory=True,
                     workers=workers, **options)
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
                  body_timeout: float = DEFAULT_BODY_TIMEOUT, max_connections: int | None = None,
                  **options: Any) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn in this event loop for the duration of the block; yields its base URL
    (``http://127.0.0.1:PORT``). The server shuts down when the block ends, and the block is cancelled when the
    server stops by itself (it caught SIGINT or SIGTERM)."""
    server = _server(app, host, port or free_port(host), log_level, header_timeout, body_timeout, max_connections,
                     **options)
    server.config.setup_event_loop = lambda: None
    failure: Exception | None = None

    async def run(tg: TaskGroup) -> None:
        await server.serve()
        # the server stopped on its own (a signal it caught: Ctrl-C, SIGTERM): the block ends too. (When it was
        # the block that ended, this cancels nothing more.) Without this a process that ignores SIGINT, as a
        # background job of a script does, would wait in the block forever once uvicorn took the signal.
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, tg)
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
