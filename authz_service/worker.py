"""Processes: a supervisor that starts N workers, each serving gRPC (own port) and HTTP (shared port).

One Python process saturates one core at about 2,000 checks/s, so the service scales with processes,
not threads. Worker i serves ext_authz on `grpc_port + i` (Envoy balances over them) and the HTTP API
on `http_port`, shared by every worker through SO_REUSEPORT.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from multiprocessing.process import BaseProcess
from types import FrameType

import grpc
import uvicorn
from envoy.service.auth.v3 import external_auth_pb2_grpc as ext_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from authz_service.errors import AuthzError
from authz_service.ext_authz import AuthorizationServicer
from authz_service.http_app import create_app
from authz_service.identity.provider import load_or_create_session_secret
from authz_service.identity.store import IdentityStore
from authz_service.keys import KeyRing
from authz_service.runtime import Runtime
from authz_service.settings import Settings

__all__ = ["PortInUseError", "check_ports_free", "grpc_serving", "serve", "wait_grpc_serving"]

logger = logging.getLogger("portcullis.authz")
_RESTART_DELAY_SECONDS = 1.0
_GRPC_THREADS = 4


class PortInUseError(AuthzError, OSError):
    """A port the service needs is taken."""


def check_ports_free(host: str, ports: list[int]) -> None:
    """Fail fast, with the port named, when one is already taken.

    Raises:
        PortInUseError: the first port that cannot be bound.
    """
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # SO_REUSEADDR: connections of a previous run in TIME_WAIT do not make a port "in use"; a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                raise PortInUseError(f"port {port} on {host} is already in use") from None


def grpc_serving(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether the ext_authz worker on `port` answers its gRPC health check with SERVING."""
    try:
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    except grpc.RpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def wait_grpc_serving(host: str, ports: list[int], *, timeout: float, alive: Callable[[], bool]) -> None:
    """Poll every worker's gRPC health until SERVING, with a deadline.

    Raises:
        TimeoutError: a worker is not serving by the deadline, or `alive()` turned false.
    """
    deadline = time.monotonic() + timeout
    for port in ports:
        while not grpc_serving(host, port):
            if not alive() or time.monotonic() > deadline:
                raise TimeoutError(f"ext_authz worker on port {port} is not serving")
            time.sleep(0.05)


def _shared_socket(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP. Without it every
    # keep-alive AuthZEN response written in two parts waited ~40 ms for the client's delayed ACK (measured).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _serve_worker(settings: Settings, index: int) -> None:
    runtime = Runtime(settings)
    # grpcio's threaded server, not grpc.aio: measured through Envoy on 2 cores it serves ~1.6x the checks/s
    # (bench/README.md). The HTTP API stays on asyncio (uvicorn) in this process's main thread.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=_GRPC_THREADS, thread_name_prefix="ext-authz"),
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 1 << 20)],
    )
    servicer = AuthorizationServicer(runtime.decider, revoked=runtime.revoked_tokens)
    ext_grpc.add_AuthorizationServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = settings.grpc_port + index
    server.add_insecure_port(f"{settings.host}:{port}")
    server.start()

    async def track_health() -> None:
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        while True:
            # Not serving until the revocation feed is loaded (and while it is stale): such checks would be 503s.
            ready = runtime.engine.ready and runtime.revocations_ready
            health_servicer.set("", serving if ready else not_serving)
            health_servicer.set("envoy.service.auth.v3.Authorization", serving if ready else not_serving)
            await asyncio.sleep(1 if ready else 0.1)

    config = uvicorn.Config(create_app(runtime), log_level="warning", access_log=False, lifespan="off")
    http = uvicorn.Server(config)
    tasks = [asyncio.create_task(track_health())]
    if settings.watch:
        tasks.append(asyncio.create_task(runtime.watch()))
    tasks.append(asyncio.create_task(runtime.follow_catalog()))
    tasks.append(asyncio.create_task(runtime.follow_revocations()))
    try:
        await http.serve(sockets=[_shared_socket(settings.host, settings.http_port)])
    finally:
        for task in tasks:
            task.cancel()
        server.stop(grace=1.0).wait()
        runtime.close()


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _worker_main(settings: Settings, index: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s authz[{index}] %(levelname)s %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per poll of the revocation feed
    # uvicorn handles SIGTERM while it serves, then restores the previous handler and raises the signal again.
    # With the default handler that kill skipped the clean-up below (queued decision-log lines, the identity
    # store, the gRPC server's grace); this handler turns it into SystemExit, which runs every `finally`.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    asyncio.run(_serve_worker(settings, index))


def serve(settings: Settings) -> int:
    """Run the service until SIGINT/SIGTERM; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s authz %(levelname)s %(message)s")
    check_ports_free(settings.host, [settings.http_port, *settings.grpc_ports()])
    # Once, before the workers: the first key is made here, not in a race.
    KeyRing.load_or_create(settings.key_dir, activation_seconds=settings.key_activation_seconds)
    if settings.identity:  # the same for the login-cookie secret and the identity store's tables
        load_or_create_session_secret(settings.key_dir)
        IdentityStore(settings.identity_database()).close()
    metrics_dir = tempfile.mkdtemp(prefix="portcullis-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the spawned workers
    context = multiprocessing.get_context("spawn")
    workers: dict[int, BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        process = context.Process(target=_worker_main, args=(settings, index), name=f"authz-worker-{index}")
        process.start()
        workers[index] = process

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(settings.workers):
        start(index)
    logger.info(
        "serving HTTP on %s:%d and ext_authz gRPC on ports %s with %d workers",
        settings.host, settings.http_port, ",".join(map(str, settings.grpc_ports())), settings.workers,
    )  # fmt: skip
    try:
        while not stopping:
            time.sleep(0.2)
            for index, process in list(workers.items()):
                if not process.is_alive() and not stopping:
                    logger.error("worker %d exited with %s; restarting", index, process.exitcode)
                    time.sleep(_RESTART_DELAY_SECONDS)
                    start(index)
    finally:
        for process in workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in workers.values():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve(Settings()))
