"""Real servers for end-to-end tests: the Litestar app over a socket, never a mock.

- `ThreadedServer`: uvicorn in a thread of the test process, serving `create_app(settings)`;
  tests can pass a plugin registry or a fixed `today`, and read the services directly.
- `ProcessServer`: `regua serve` as a subprocess (the real command line, workers, signals),
  with its stderr captured to a file for log assertions.
Both listen on 127.0.0.1 on a free port, use a temporary store and a temporary copy of the bundled
policies, and stop gracefully. The store is a temporary SQLite file, or the PostgreSQL database in
`STORE_URL` while a test runs under the `backend` fixture (tests/conftest.py), which runs it once
per backend.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
#: The PostgreSQL database of the running test when it runs on that backend (set by the `backend` fixture).
STORE_URL: str | None = None
SANDBOX_HEADERS = {"Authorization": "Bearer regua-sandbox"}

#: The bundled B2B credit policy and two challengers of it, for the experiment tests: same inputs,
#: another version. STRICT: the low-score band reaches 500. LOOSE: orders go to review only above
#: 1.5x the limit (a shadow that disagrees with the champion on some orders).
B2B = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
STRICT = B2B.replace('version "2026.11.1"', 'version "2026.12-strict"').replace("when score <= 300", "when score <= 500")
LOOSE = B2B.replace('version "2026.11.1"', 'version "2026.12-loose"').replace(
    "when saldo + valor_pedido > limite_vigente", "when saldo + valor_pedido > limite_vigente * 150%")


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

        from regua.server.app import create_app

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

    from regua.server.config import Settings

    data = {"sandbox": True, "server": {"port": free_port()},
            "store": {"path": str(tmp_path / "regua.db"), "url": STORE_URL or "", "flush_interval_ms": 10},
            "policies": {"folder": str(copy_policies(tmp_path / "policies")), "sync_interval": 0.2}}
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return msgspec.convert(data, Settings)


@contextlib.contextmanager
def server_with_policies(tmp_path: Path, **sources: str):
    """A sandbox ThreadedServer on the bundled policies plus `name=source` policy files."""
    settings = sandbox_settings(tmp_path)
    for name, source in sources.items():
        (Path(settings.policies.folder) / f"{name}.regua").write_text(source, encoding="utf-8")
    with ThreadedServer(settings) as running:
        yield running


class ProcessServer:
    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None, policies: Path | None = None,
                 db: str | None = None, name: str = "server"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db or STORE_URL or tmp_path / "regua.db"  # a SQLite file or a postgresql:// URL
        self.policies = policies or copy_policies(tmp_path / "policies")
        self.log_path = tmp_path / f"{name}.log"
        self.out_path = tmp_path / f"{name}.out"
        self.args = ["--sandbox", "--port", str(self.port), "--db", str(self.db), "--policies", str(self.policies),
                     *args]
        self.env = {**os.environ, "REGUA_POLICIES__SYNC_INTERVAL": "0.2", **(env or {})}
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ProcessServer":
        regua = Path(sys.executable).parent / "regua"
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
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


# ---- helpers for the HTTP API tests (tests/test_server_*.py) ----
EXAMPLE_ORDER = ROOT / "examples" / "pedido_b2b.json"
#: A ULID as the server makes them: 26 Crockford base32 characters, the first at most 7 (128 bits).
ULID_PATTERN = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_millis(ulid: str) -> int:
    """The creation time a ULID carries, in Unix milliseconds (its first 10 characters)."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value


def b2b_order(cnpj: str | None = None, **fields) -> dict:
    """A valid credito_b2b input (examples/pedido_b2b.json), with another CNPJ or other fields."""
    import json

    order = json.loads(EXAMPLE_ORDER.read_text(encoding="utf-8"))
    if cnpj is not None:
        order["cnpj"] = cnpj
    order.update(fields)
    return order


def b2c_order(cpf: str, **fields) -> dict:
    """A valid credito_b2c input for this CPF."""
    return {"cpf": cpf, "data_nascimento": "1990-05-01", "renda_mensal": "8000.00", "valor_compra": "2400.00",
            "parcelas": 6, **fields}


_DOCUMENT_NUMBERS = itertools.count(1)


def fresh_document(profile: str = "clean", kind: str = "cnpj") -> str:
    """A CPF/CNPJ no other call in this process returned, answered by the sandbox bureau with `profile`."""
    from regua.plugins.builtin.sandbox_bureau import sandbox_document

    return sandbox_document(profile, kind=kind, n=next(_DOCUMENT_NUMBERS))


#: The fields of a POST /evaluate answer.
DECISION_FIELDS = {"decision_id", "policy", "outcome", "outputs", "reasons", "trace", "connector_calls",
                   "duration_ms", "dry_run"}


def without_durations(calls: list) -> list:
    """Connector calls without their (run-dependent) durations."""
    return [{k: v for k, v in call.items() if k != "duration_ms"} for call in calls]


def assert_error_body(body) -> None:
    """The one error body: {"code", "message", "errors": [{"code", "message", "location"}]}."""
    assert isinstance(body, dict) and set(body) == {"code", "message", "errors"}, body
    assert isinstance(body["code"], str) and body["code"] and body["code"] == body["code"].upper(), body
    assert isinstance(body["message"], str) and body["message"], body
    assert isinstance(body["errors"], list), body
    for detail in body["errors"]:
        assert set(detail) == {"code", "message", "location"}, detail
        assert isinstance(detail["code"], str) and isinstance(detail["message"], str), detail
        assert detail["location"] is None or isinstance(detail["location"], str), detail


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """`response` is a JSON error body with this status (and code); returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert_error_body(body)
    if code is not None:
        assert body["code"] == code, body
    return body


def error_locations(body: dict) -> set:
    return {detail["location"] for detail in body["errors"]}


def ndjson(response: httpx.Response) -> list:
    import json

    return [json.loads(line) for line in response.text.split("\n") if line]


def scrape(client: httpx.Client) -> dict:
    """GET /metrics parsed: {(sample name, ((label, value), ...)): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def metric(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


_LOCAL_REGISTRY = []


def local_decision(policy: str, data: dict, trace: str = "off", as_of=None) -> dict:
    """What the engine decides without the server: the bundled policy compiled with
    `engine.compile_file`, evaluated with the sandbox connectors a sandbox server uses,
    as the JSON the server would send (connector durations removed)."""
    import msgspec

    from regua.engine.compiler import compile_file
    from regua.plugins.registry import Registry
    from regua.portfolio.monitoring.account import AccountLookup

    if not _LOCAL_REGISTRY:
        # The server answers portfolio.customer from its store: an empty portfolio here, like a fresh server's.
        empty = Path(tempfile.mkdtemp(prefix="regua-local-")) / "regua.db"
        connectors = (registry := Registry.load(sandbox_aliases=True)).engine_connectors()
        connectors.register("portfolio.customer", AccountLookup(str(empty), lambda: as_of or dt.date.today()))
        _LOCAL_REGISTRY.append((registry, connectors))
    registry, connectors = _LOCAL_REGISTRY[0]
    prepared = compile_file(ROOT / "policies" / f"{policy}.regua", registry.environment())
    decision = prepared.evaluate(data, connectors=connectors, trace=trace, as_of=as_of)
    result = msgspec.json.decode(msgspec.json.encode(decision.to_dict()))
    for call in result["connector_calls"]:
        call.pop("duration_ms")
    result.update(outcome=decision.outcome, policy={"name": prepared.name, "version": prepared.version})
    return result
