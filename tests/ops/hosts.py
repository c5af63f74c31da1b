"""Several "hosts" on one machine: network namespaces joined to this one by veth pairs, each
with its own address, and a PostgreSQL listening on this side of every link.

Needs root (as CI runs) and iproute2. Every namespace and link made here is deleted on the way
out, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from querygate.demo import start_embedded, stop_embedded

PG_PORT = 5433


@dataclass(frozen=True)
class Host:
    namespace: str
    address: str  # the host's own address, inside its namespace
    gateway_side: str  # this machine's address on the link, where PostgreSQL listens


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """``count`` namespaces, host k at 10.213.N.(4k+2), this machine at 10.213.N.(4k+1)."""
    assert os.geteuid() == 0, "this test makes network namespaces: run it as root"
    tag = os.getpid() % 100000
    subnet = f"10.213.{20 + tag % 200}"
    made: list[tuple[str, str]] = []
    try:
        for k in range(1, count + 1):
            namespace, outside, inside = f"qg{tag}h{k}", f"qg{tag}o{k}", f"qg{tag}i{k}"
            ip("netns", "add", namespace)
            made.append((namespace, outside))
            ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace)
            ip("addr", "add", f"{subnet}.{4 * k + 1}/30", "dev", outside)
            ip("link", "set", outside, "up")
            ip("-n", namespace, "addr", "add", f"{subnet}.{4 * k + 2}/30", "dev", inside)
            ip("-n", namespace, "link", "set", inside, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
        yield [Host(ns, f"{subnet}.{4 * k + 2}", f"{subnet}.{4 * k + 1}")
               for k, (ns, _) in enumerate(made, 1)]
    finally:
        for namespace, outside in made:
            subprocess.run(["ip", "netns", "del", namespace], check=False, timeout=10)
            subprocess.run(["ip", "link", "del", outside], check=False, capture_output=True,
                           timeout=10)  # gone with its peer already, normally


@contextlib.contextmanager
def postgres_on(data_dir: Path, addresses: list[str]) -> Iterator[str]:
    """The embedded PostgreSQL, listening on ``addresses`` (TCP, trust for 10.213/16) as well as
    its Unix socket; yields its superuser URL over the socket. Stopped afterwards."""
    url = start_embedded(data_dir)
    try:
        stop_embedded(data_dir)
        with (data_dir / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.213.0.0/16 trust\n")
        from pgserver._commands import pg_ctl  # the embedded server's own binaries

        socket_dir = conninfo_to_dict(url)["host"]
        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-w", "-o", f"-h {','.join(addresses)} -p {PG_PORT} -k {socket_dir}",
                "-l", str(data_dir / "log"), "start"], pgdata=data_dir, user=user, timeout=30)
        yield make_conninfo(url, port=str(PG_PORT))  # the socket's name follows the port
    finally:
        stop_embedded(data_dir)


def over_tcp(url: str, address: str) -> str:
    """``url`` reached over TCP at ``address`` instead of the Unix socket."""
    params = conninfo_to_dict(url)
    params.update(host=address, port=str(PG_PORT))
    return make_conninfo("", **params)


@contextlib.contextmanager
def serve_on(host: Host, project: Path, port: int = 8080) -> Iterator[str]:
    """`querygate serve` inside ``host``'s namespace; yields its URL, reached over the link."""
    proc = subprocess.Popen(["ip", "netns", "exec", host.namespace, sys.executable, "-m",
                             "querygate", "serve", "--host", host.address, "--port", str(port),
                             "--project", str(project)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://{host.address}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise RuntimeError(f"serve in {host.namespace} did not start: "
                                       f"{proc.communicate(timeout=10)[0]}") from None
                time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
