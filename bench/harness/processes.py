"""Servers as processes: free ports, `querygate serve`, the bare endpoint; their CPU and memory."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    """Until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wait_ready(url: str, timeout: float = 120) -> None:
    """Until ``url`` answers 200 (``/readyz`` answers 503 until the gateway can serve)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


@dataclass
class Server:
    """A server process we started: its base URL, and how long it took to become ready."""

    proc: subprocess.Popen[bytes]
    url: str
    ready_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid


def _start(command: list[str], url: str, ready_path: str) -> Server:
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    server = Server(proc, url)
    try:
        wait_ready(url + ready_path)
    except BaseException:
        stop(server)
        raise
    server.ready_s = time.monotonic() - started
    return server


def start_serve(project: Path, port: int | None = None, *args: str) -> Server:
    """``querygate serve --project PROJECT`` on ``port`` (a free one by default), ready."""
    port = port or free_port()
    return _start([sys.executable, "-m", "querygate", "serve", "--port", str(port),
                   "--project", str(project), *args], f"http://127.0.0.1:{port}", "/readyz")


def start_bare(dsn: str, port: int | None = None, loop: str = "uvloop",
               http: str = "httptools") -> Server:
    """The bare endpoint (``bench.harness.bare``) on ``dsn``, ready."""
    port = port or free_port()
    return _start([sys.executable, "-m", "bench.harness.bare", dsn, str(port), loop, http],
                  f"http://127.0.0.1:{port}", "/")


def stop(server: Server) -> None:
    """Ctrl-C, as a person stops it; wait for it to finish."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


def detector_processes(serve_pid: int) -> list[psutil.Process]:
    """The processes `serve` spawned beside it (the insider detector), not the resource tracker."""
    found = []
    for child in psutil.Process(serve_pid).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in line:
            found.append(child)
    return found


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (PostgreSQL: the postmaster and its backends)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


Group = Callable[[], list[psutil.Process]]


class CpuMeter:
    """User + system CPU seconds of named groups of processes between ``start`` and ``stop``.

    The groups are read every 100 ms in between, so a process that starts counts from 0 and
    one that ends (a client's backend when it disconnects) counts up to its last reading.
    """

    def __init__(self, groups: dict[str, Group]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.last: dict[str, dict[int, float]] = {}
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, group in self.groups.items():
            out[name] = {}
            for proc in group():
                try:
                    times = proc.cpu_times()
                    out[name][proc.pid] = times.user + times.system
                except psutil.Error:
                    pass
        return out

    def _merge(self) -> None:
        for name, seen in self._read().items():
            self.last.setdefault(name, {}).update(seen)

    def _poll(self) -> None:
        while not self._running.wait(0.1):
            self._merge()

    def start(self) -> None:
        self.before = self._read()
        self.last = {}
        self._running.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._running.set()
        if self._thread is not None:
            self._thread.join()
        self._merge()
        return {name: sum(cpu - self.before.get(name, {}).get(pid, 0.0)
                          for pid, cpu in self.last.get(name, {}).items())
                for name in self.groups}


class PeakRss(threading.Thread):
    """Peak resident memory of one process, sampled every 50 ms while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.running = psutil.Process(pid), 0, True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.join()
