"""The insider detector beside the gateway, in a process of its own.

The detector is CPU work over every audit event. Run in the gateway's event loop it took 7 % of
the process under load and lengthened the slowest calls (docs/performance.md), so ``serve``
starts it as a separate process: its work never delays a call. One process runs it at a time
across all gateways (``DetectorService`` holds an advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from multiprocessing.process import BaseProcess
from pathlib import Path

from querygate.cli._gc import tune_for_serving
from querygate.detect import DetectorService
from querygate.project import Project, load_project

log = logging.getLogger("querygate.detect")

PARENT_CHECK_S = 2.0  # how often the detector looks whether the gateway that started it is alive
WATCH_S = 5.0  # how often the gateway looks whether its detector is alive


def _detect(project_dir: str, parent: int) -> None:
    """The detector process: follow the log until stopped, or until the gateway is gone."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_follow_log(Path(project_dir), parent))


async def _follow_log(project_dir: Path, parent: int) -> None:
    detector = DetectorService.from_project(load_project(project_dir))
    if detector is None:
        return
    tune_for_serving()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, detector.stop)
    running = asyncio.create_task(detector.run())
    while not running.done():
        await asyncio.wait({running}, timeout=PARENT_CHECK_S)
        if os.getppid() != parent:  # the gateway ended without stopping us: so do we
            detector.stop()
    await running


class DetectorProcess:
    """Start, watch and stop the detector's process for one project (when it is enabled)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.enabled = DetectorService.from_project(project) is not None
        self._process: BaseProcess | None = None
        self._stopping = False

    def start(self) -> None:
        if not self.enabled:
            return
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(target=_detect, name="querygate-detect", daemon=True,
                                        args=(str(self.project.root), os.getpid()))
        self._process.start()

    def stop(self) -> None:
        """Ask the detector to finish (it stores what it has), then make sure it has ended."""
        self._stopping = True
        process = self._process
        if process is None or not process.is_alive():
            return
        process.terminate()
        process.join(10)
        if process.is_alive():
            log.error("detector: did not stop within 10 s; killing it")
            process.kill()
            process.join()

    async def watch(self) -> None:
        """Restart the detector if its process ends while the gateway runs, saying so."""
        while not self._stopping:
            await asyncio.sleep(WATCH_S)
            process = self._process
            if self._stopping or process is None or process.is_alive():
                continue
            log.error("detector: its process ended (exit code %s); starting it again",
                      process.exitcode)
            self.start()
