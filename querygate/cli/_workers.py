"""Serving: one process, or several worker processes sharing one listening socket.

Every worker opens its own Gateway (its own pools). Nothing that must hold across
workers lives in process memory: identities and revocations, the audit chain's head
and limits are in PostgreSQL, so all workers agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import sys
from pathlib import Path

import click
import uvicorn

from querygate import audit
from querygate.api import create_app
from querygate.cli._detecting import DetectorProcess
from querygate.cli._gc import tune_for_serving
from querygate.gateway import Gateway
from querygate.pgwire import PgServer, PostgresConfig, postgres_config
from querygate.project import Project, load_project


def use_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass


async def serve_project(project: Project, host: str, port: int, *, banner: list[str] | None = None,
                        sock: socket.socket | None = None, detect: bool = True,
                        postgres: PostgresConfig | None = None) -> None:
    """Open the gateway, then serve its API (and, with ``postgres:`` or ``postgres``, its
    PostgreSQL front door) until interrupted; with ``detect``, the insider detector runs
    beside it in a process of its own."""
    postgres = postgres or postgres_config(project)
    gateway = await Gateway.open(project)
    pg_server = PgServer(gateway, postgres) if postgres is not None else None
    if pg_server is not None:
        try:
            await pg_server.start(reuse_port=sock is not None)  # workers share the port
        except BaseException:
            await gateway.close()
            raise
    config = uvicorn.Config(create_app(gateway), host=host, port=port, log_level="warning",
                            access_log=False, loop="none", lifespan="on")
    server = uvicorn.Server(config)
    # Before the banner: a checkpoint bucket without object lock refuses to start here.
    checkpoints = audit.CheckpointLoop.for_project(project, gateway.audit_pool)
    if banner is not None:
        click.echo(f"querygate serving {len(gateway.functions)} functions on http://{host}:{port}")
        if pg_server is not None:
            click.echo(f"PostgreSQL front door on {postgres_where(pg_server)}")
        for line in banner:
            click.echo(line)
    if checkpoints is not None:
        checkpoints.start()
    tune_for_serving()
    detector = DetectorProcess(project) if detect else None
    watching = None
    if detector is not None:
        detector.start()
        watching = asyncio.create_task(detector.watch())
    try:
        await server.serve(sockets=[sock] if sock else None)
    finally:
        if pg_server is not None:
            await pg_server.close()
        if checkpoints is not None:
            await checkpoints.stop()
        if detector is not None and watching is not None:
            watching.cancel()
            await asyncio.to_thread(detector.stop)


def postgres_where(server: PgServer) -> str:
    tls = "TLS" if server.tls is not None else "no TLS (loopback)"
    return f"{server.config.host}:{server.port} ({tls})"


def _worker(project_dir: str, host: str, port: int, sock: socket.socket) -> None:
    use_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_project(load_project(Path(project_dir)), host, port, sock=sock,
                                  detect=False))


def serve_workers(project: Project, host: str, port: int, workers: int) -> None:
    """Bind once, start ``workers`` processes on the shared socket, stop them all together."""
    sock = socket.create_server((host, port), reuse_port=False)
    sock.set_inheritable(True)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_worker, args=(str(project.root), host, port, sock),
                                daemon=True) for _ in range(workers)]
    for child in children:
        child.start()
    detector = DetectorProcess(project)  # one for all the workers
    detector.start()
    click.echo(f"querygate serving {len(project.catalog)} functions on http://{host}:{port} "
               f"with {workers} worker processes")
    postgres = postgres_config(project)
    if postgres is not None:
        click.echo(f"PostgreSQL front door on {postgres.host}:{postgres.port} in every worker")

    def stop(signum: int, frame: object) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()
    detector.stop()
    sock.close()
    failed = [c.exitcode for c in children if c.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        sys.exit(f"a worker exited with code {failed[0]}")
