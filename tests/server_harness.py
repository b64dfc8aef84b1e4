"""Real servers for end-to-end tests: the Litestar app over a socket, never a mock.

- `ThreadedServer`: uvicorn in a thread of the test process, serving `create_app(settings)`;
  tests can pass a plugin registry or a fixed `today`, and read the services directly.
- `ProcessServer`: `regua serve` as a subprocess (the real command line, workers, signals),
  with its stderr captured to a file for log assertions.
Both listen on 127.0.0.1 on a free port, use a temporary SQLite file and a temporary copy of
the bundled policies, and stop gracefully.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_HEADERS = {"Authorization": "Bearer regua-sandbox"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_policies(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "policies").glob("*.regua"):
        shutil.copy(path, target / path.name)
    return target


def wait_ready(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


class ThreadedServer:
    def __init__(self, settings, registry=None, today=None):
        import uvicorn

        from server.app import create_app

        self.app = create_app(settings, registry=registry, today=today)
        self.services = self.app.state.services
        self.port = settings.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        wait_ready(self.url)
        return self

    def client(self, headers: dict | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=SANDBOX_HEADERS if headers is None else headers, timeout=30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def __exit__(self, *exc) -> None:
        self.stop()


def sandbox_settings(tmp_path: Path, **sections):
    """Settings for a test server: sandbox, a free port, a temp store and a temp copy of the policies."""
    import msgspec

    from server.config import Settings

    data = {"sandbox": True, "server": {"port": free_port()},
            "store": {"path": str(tmp_path / "regua.db"), "flush_interval_ms": 10},
            "policies": {"folder": str(copy_policies(tmp_path / "policies")), "sync_interval": 0.2}}
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return msgspec.convert(data, Settings)


class ProcessServer:
    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None, policies: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "regua.db"
        self.policies = policies or copy_policies(tmp_path / "policies")
        self.log_path = tmp_path / "server.log"
        self.out_path = tmp_path / "server.out"
        self.args = ["--sandbox", "--port", str(self.port), "--db", str(self.db), "--policies", str(self.policies),
                     *args]
        self.env = {**os.environ, "REGUA_POLICIES__SYNC_INTERVAL": "0.2", **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ProcessServer":
        regua = Path(sys.executable).parent / "regua"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 — closed in stop()
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen([str(regua), "serve", *self.args], stdout=self._out, stderr=self._log,
                                        env=self.env, cwd=ROOT)
        wait_ready(self.url, process=self.process)
        return self

    def client(self, headers: dict | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=SANDBOX_HEADERS if headers is None else headers, timeout=30)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._out.close()
        return self.process.returncode

    def __exit__(self, *exc) -> None:
        self.stop()
