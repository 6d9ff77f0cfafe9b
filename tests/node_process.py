"""A ript node in its own process, as `ript up` starts it (shared by the panel and robot tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class NodeProcess:
    """A ript node as `ript up` starts it (`python -m module --ros-args -p ...`), its output in a
    log file; stop() sends SIGINT, as `ript up` does, and returns the exit code."""

    def __init__(self, module: str, log_path: Path, **params):
        command = [sys.executable, "-m", module, "--ros-args"]
        for key, value in params.items():
            value = str(value).lower() if isinstance(value, bool) else "''" if value == "" else value
            command += ["-p", f"{key}:={value}"]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
