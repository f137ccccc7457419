"""The one writer of status.json, shared by the training loop and the heartbeat thread."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from core.runs.rundir import RunPaths, RunStatus, now, write_status

HEARTBEAT_SECONDS = 2.0


class StatusKeeper:
    def __init__(self, paths: RunPaths, status: RunStatus) -> None:
        self._paths = paths
        self._status = status
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ftod-heartbeat", daemon=True)
        write_status(paths, status)

    @property
    def status(self) -> RunStatus:
        return self._status

    def update(self, **changes: Any) -> None:
        with self._lock:
            self._status = self._status.with_changes(heartbeat=now(), **changes)
            write_status(self._paths, self._status)

    def note(self, **changes: Any) -> None:
        """Change fields without writing: the heartbeat writes them within two seconds.

        Used for the step count, so the training thread never waits on an fsync per step.
        """
        with self._lock:
            self._status = self._status.with_changes(**changes)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                self.update()
