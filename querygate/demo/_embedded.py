"""The embedded PostgreSQL server used by the demo and the test suite.

It is the real server, shipped as a Python package (``pgserver``): initdb on
first use, started on a Unix socket inside the data folder, reused next time.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the server whose data lives in ``data_dir``; return its superuser URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server: Any = pgserver.get_server(data_dir, cleanup_mode=None)
    with server._lock:  # a handle kept from before a stop: start the server again
        server.ensure_postgres_running()
    return str(server.get_uri())


def stop_embedded(data_dir: Path) -> None:
    """Stop the server whose data lives in ``data_dir`` (fast shutdown), if it runs."""
    import os
    import subprocess

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=30)
    except subprocess.CalledProcessError:
        if (data_dir / "postmaster.pid").exists():
            raise
