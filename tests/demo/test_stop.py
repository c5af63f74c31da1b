"""``querygate demo`` as a real process: however it is stopped, its embedded PostgreSQL stops too."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.demo_env import free_port


def _started_in_the_background() -> None:
    """What a shell without job control does to the commands it starts with ``&``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_demo_stops_its_embedded_postgresql(tmp_path: Path, stop: int,
                                                     background: bool) -> None:
    """Ctrl+C is what the banner says; a supervisor (systemd, docker stop, kill) sends SIGTERM.
    Either ends with the lines that say so and exit 0, and no PostgreSQL is left running:
    also when the signal comes right after the banner, before the server has taken over the
    signals, and when it was started in the background (SIGINT ignored)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "querygate", "demo", "--data-dir", str(tmp_path),
         "--port", str(free_port()), "--pg-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_started_in_the_background if background else None)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:  # the banner ends with how to stop
        lines.append(line)
        if "stop with Ctrl+C" in line or time.monotonic() > deadline:
            break
    pid_file = tmp_path / "pg" / "postmaster.pid"
    try:
        assert any("stop with Ctrl+C" in line for line in lines), "".join(lines)
        assert pid_file.exists()  # the embedded server is up
        proc.send_signal(stop)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "querygate stopped" in output and "Aborted" not in output
    assert f"embedded PostgreSQL stopped; its data stays in {tmp_path / 'pg'}" in output
    assert not pid_file.exists(), output
