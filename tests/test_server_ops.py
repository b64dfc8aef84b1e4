"""Operating the server: configuration, `regua serve` (sandbox banner, curl example, runners),
personal data kept out of logs and metrics, /metrics across workers."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from server_harness import ROOT, SANDBOX_HEADERS, ProcessServer, ThreadedServer, sandbox_settings

from regua.server.config import ConfigError, load_settings
from regua.server.logs import MaskingFilter, mask_text

ORDER = json.loads((ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8"))
PERSON = {"data_nascimento": "1985-04-12", "renda_mensal": "6000.00", "valor_compra": "3000.00", "parcelas": 6}
REGUA = Path(sys.executable).parent / "regua"


# ---- configuration ----
def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_come_from_the_file_with_the_environment_on_top(tmp_path):
    config = write(tmp_path / "regua.toml", 'sandbox = true\n[server]\nport = 9001\nworkers = 3\n'
                                            '[store]\npath = "/srv/regua.db"\ndurability = "batched"\n')
    environ = {"REGUA_SERVER__PORT": "9002", "REGUA_STORE__DURABILITY": "sync", "REGUA_LOG_LEVEL": "debug",
               "REGUA_SERVER__ACCESS_LOG": "true", "REGUA_POLICIES__SYNC_INTERVAL": "0.5",
               # not settings: ignored
               "REGUA_PLUGINS_ALLOW": "x", "REGUA_API_KEYS": "y", "REGUA_SOMETHING_ELSE": "z", "PATH": "/bin"}
    settings = load_settings(config, environ)
    assert settings.server.port == 9002 and settings.server.workers == 3 and settings.sandbox is True
    assert settings.store.path == "/srv/regua.db" and settings.store.durability == "sync"
    assert settings.log_level == "debug" and settings.server.access_log is True
    assert settings.policies.sync_interval == 0.5
    assert load_settings(environ={"REGUA_CONFIG": str(config)}).server.port == 9001
    assert load_settings(environ={}).server.port == 8000  # no file: defaults
    assert load_settings(write(tmp_path / "empty.toml", ""), {}).store.path == "var/regua.db"  # runtime files under var/


@pytest.mark.parametrize("text, environ, expected", [
    ("[server\nport = 1\n", {}, r"bad\.toml: .*line 1"),
    ('[server]\nport = "abc"\n', {}, r"bad\.toml: server\.port: Expected `int`, got `str`"),
    ("[store]\nflush_max = 1.5\n", {}, r"bad\.toml: store\.flush_max: Expected `int`"),
    ("", {"REGUA_SERVER__PORT": "abc"}, r"bad\.toml \+ environment: server\.port: Expected `int`"),
    ("[server]\nprot = 1\n", {}, r"bad\.toml: server: .*unknown field `prot`"),
    ("colour = 1\n", {}, r"unknown field `colour`"),
    ("", {"REGUA_STORE__PTAH": "x.db"}, r"store: .*unknown field `ptah`"),
    ('log_level = "verbose"\n', {}, r"log_level: Invalid enum value 'verbose'"),
    ("[server]\nport = 70000\n", {}, r"server\.port: 70000 is not a TCP port"),
    ('sandbox = true\n[server]\nhost = "0.0.0.0"\n', {}, r"server\.host: sandbox mode listens on loopback only"),
    ("", {"REGUA_SANDBOX": "true", "REGUA_SERVER__HOST": "::"}, r"server\.host: sandbox mode"),
], ids=["toml", "type", "float-for-int", "env-type", "unknown", "unknown-top", "env-unknown", "enum", "port",
        "public-sandbox", "public-sandbox-env"])
def test_bad_settings_are_reported_with_the_file_and_the_field(tmp_path, text, environ, expected):
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ)
    assert str(config) in str(error.value)
    assert re.search(expected, str(error.value)), str(error.value)


def test_missing_file_and_public_sandbox_override(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere\.toml: no such configuration file"):
        load_settings(tmp_path / "nowhere.toml", {})
    public = write(tmp_path / "public.toml",
                   'sandbox = true\n[server]\nhost = "0.0.0.0"\nallow_public_sandbox = true\n')
    assert load_settings(public, {}).server.host == "0.0.0.0"
    assert load_settings(environ={"REGUA_SERVER__HOST": "0.0.0.0"}).server.host == "0.0.0.0"  # not sandbox


def test_list_settings_from_the_environment_are_comma_separated():
    assert load_settings(environ={"REGUA_PLUGINS__DENY": "a,b"}).plugins.deny == ["a", "b"]


@pytest.mark.parametrize("args, expected", [
    (["--config", "{tmp}/bad.toml"], r"bad\.toml: .*line 2"),
    (["--config", "{tmp}/type.toml"], r"type\.toml( \+ environment)?: server\.workers: Expected `int`, got `str`"),
    (["--config", "{tmp}/missing.toml"], r"missing\.toml: no such configuration file"),
    (["--sandbox", "--host", "0.0.0.0"], r"server\.host: sandbox mode listens on loopback only"),
], ids=["toml", "type", "missing", "public-sandbox"])
def test_regua_serve_refuses_a_bad_configuration_clearly(tmp_path, args, expected):
    write(tmp_path / "bad.toml", "[server]\nport = = 1\n")
    write(tmp_path / "type.toml", '[server]\nworkers = "many"\n')
    db = tmp_path / "regua.db"
    result = subprocess.run([str(REGUA), "serve", "--db", str(db), *[a.format(tmp=tmp_path) for a in args]],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "regua serve: configuration error:" in result.stderr
    assert re.search(expected, result.stderr), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not db.exists()  # refused before touching anything


# ---- sandbox mode and the curl example ----
def test_sandbox_mode_is_loud_and_the_printed_curl_command_works(tmp_path):
    with ProcessServer(tmp_path) as server:
        assert httpx.get(server.url + "/health").json()["sandbox"] is True
        printed = re.search(r"^Try it:\n(curl .+)$", server.stdout(), re.M)
        assert printed, server.stdout()
        result = subprocess.run(["bash", "-c", printed.group(1)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "approve" and decision["decision_id"]
    assert decision["policy"]["name"] == "credito_b2b" and "trace" in decision
    output = server.logs()
    assert "SANDBOX MODE" in output and "SYNTHETIC" in output and "regua-sandbox" in output
    assert "Never run sandbox mode in production" in output


def test_without_sandbox_health_says_so(tmp_path, caplog):
    with ThreadedServer(sandbox_settings(tmp_path, sandbox=False)) as server:
        assert httpx.get(server.url + "/health").json()["sandbox"] is False
        assert httpx.post(server.url + "/evaluate/credito_b2b", json={"input": ORDER},
                          headers=SANDBOX_HEADERS).status_code == 401  # no development key either
    assert not any("SANDBOX" in r.getMessage() for r in caplog.records)


# ---- personal data out of logs and metrics ----
CPFS = ["529.982.247-25", "111.444.777-35"]
CNPJS = ["11.222.333/0001-81", "12.ABC.345/01DE-35"]
INVALID = ["529.982.247-26", "11.222.333/0001-82"]  # wrong check digits: rejected, echoed in errors


def compact(document: str) -> str:
    return re.sub(r"[.\-/]", "", document)


SECRETS = sorted({form for doc in CPFS + CNPJS + INVALID for form in (doc, compact(doc))})


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory):
    """Two workers, debug logs and the access log on; traffic full of documents. Returns what it saw."""
    tmp = tmp_path_factory.mktemp("busy")
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    env = {"REGUA_LOG_LEVEL": "debug", "REGUA_SERVER__ACCESS_LOG": "true",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    decided: dict[tuple[str, str], int] = {}

    def count(policy: str, body: dict) -> None:
        decided[(policy, body["outcome"])] = decided.get((policy, body["outcome"]), 0) + 1

    with ProcessServer(tmp, "--workers", "2", env=env) as server:
        def call(method: str, path: str, **kwargs) -> httpx.Response:
            with httpx.Client(base_url=server.url, headers=SANDBOX_HEADERS, timeout=30) as client:  # either worker
                return client.request(method, path, **kwargs)

        for _ in range(4):
            for cpf in CPFS + [compact(c) for c in CPFS]:
                response = call("POST", "/evaluate/credito_b2c",
                                json={"input": {**PERSON, "cpf": cpf}, "trace": "full"})
                assert response.status_code == 200, response.text
                count("credito_b2c", response.json())
            for cnpj in CNPJS + [compact(c) for c in CNPJS]:
                response = call("POST", "/evaluate/credito_b2b", json={"input": {**ORDER, "cnpj": cnpj}})
                assert response.status_code == 200, response.text
                count("credito_b2b", response.json())
        batch = call("POST", "/evaluate/batch", json={"policy": "credito_b2b", "items": [
            {"input": {**ORDER, "cnpj": c}, "request_id": f"lote-{c}"} for c in CNPJS]})
        for line in batch.text.splitlines():
            count("credito_b2b", json.loads(line)["decision"])
        assert call("POST", "/evaluate/credito_b2c", json={"input": {**PERSON, "cpf": INVALID[0]}}).status_code == 422
        assert call("POST", "/evaluate/credito_b2b", json={"input": {**ORDER, "cnpj": INVALID[1]}}).status_code == 422
        assert call("POST", "/evaluate/credito_b2b", json={"input": ORDER, "cnpj": CNPJS[0]}).status_code == 400
        assert call("POST", "/evaluate/credito_b2b",
                    content=f'{{"input": {{"cnpj": "{CNPJS[1]}"'.encode()).status_code == 400
        for document in CPFS + CNPJS + [compact(CNPJS[0])]:
            response = call("GET", "/decisions", params={"document": document})
            assert response.status_code == 200 and response.json()["items"], response.text
        assert call("GET", f"/decisions/{compact(CNPJS[0])}").status_code == 404
        assert call("GET", f"/decisions/{CPFS[0]}").status_code == 404
        for _ in range(100):  # make sure both workers decided something (connections go to either)
            if len([n for n in per_worker_totals(metrics_dir, tmp / "scratch") if n > 0]) == 2:
                break
            count("credito_b2b", call("POST", "/evaluate/credito_b2b", json={"input": ORDER}).json())
        scrapes = [call("GET", "/metrics").text for _ in range(6)]
    return {"log": server.logs(), "scrapes": scrapes, "decided": decided, "metrics_dir": metrics_dir}


def test_no_document_reaches_the_log(busy_server):
    log = busy_server["log"]
    assert log.count("POST /evaluate/credito_b2c") >= 16  # the access log was on: masking is what hid them
    assert re.search(r'"GET /decisions\?document=\*+\d\d HTTP', log)
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, [line for line in log.splitlines() if any(s in line for s in leaked)][:5]


def test_no_document_reaches_the_metrics(busy_server):
    for scrape in busy_server["scrapes"]:
        assert "regua_decisions_total" in scrape
        assert not [secret for secret in SECRETS if secret in scrape]


def decisions_total(scrape: str) -> dict[tuple[str, str], float]:
    return {(s.labels["policy"], s.labels["outcome"]): s.value
            for family in text_string_to_metric_families(scrape) for s in family.samples
            if s.name == "regua_decisions_total"}


def per_worker_totals(folder: Path, scratch: Path) -> list[float]:
    """regua_decisions_total of each worker process alone (its own multiprocess file)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    totals = []
    for path in sorted(folder.glob("counter_*.db")):
        single = scratch / path.stem
        single.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(single))
        totals.append(sum(decisions_total(generate_latest(registry).decode()).values()))
    return totals


def test_metrics_add_up_every_worker(busy_server, tmp_path):
    expected = {key: float(n) for key, n in busy_server["decided"].items()}
    # Every scrape, whichever worker answers it, shows the decisions of both.
    assert all(decisions_total(scrape) == expected for scrape in busy_server["scrapes"])
    per_worker = per_worker_totals(busy_server["metrics_dir"], tmp_path)
    assert len([n for n in per_worker if n > 0]) == 2, per_worker
    assert sum(per_worker) == sum(expected.values())


@pytest.mark.parametrize("text, secret", [
    ("cliente 529.982.247-25 aprovado", "529.982.247-25"),
    ("cpf=52998224725&x=1", "52998224725"),
    ('{"cnpj":"11222333000181"}', "11222333000181"),
    ("cnpj 11.222.333/0001-81.", "11.222.333/0001-81"),
    ("empresa 12.ABC.345/01DE-35", "12.ABC.345/01DE-35"),
    ("empresa 12ABC34501DE35", "12ABC34501DE35"),
    ('"GET /decisions?document=11.222.333%2F0001-81 HTTP/1.1" 200', "11.222.333%2F0001-81"),
    ('"GET /decisions?policy=credito_b2b&document=529.982.247-25 HTTP/1.1" 200', "529.982.247-25"),
    ("ligar para +55 (11) 91234-5678", "91234-5678"),
    ("escrever para maria.silva+credito@example.com.br", "maria.silva"),
])
def test_mask_text_hides_documents_and_contacts(text, secret):
    masked = mask_text(text)
    assert secret not in masked and masked != text
    if "@" not in text:
        assert re.search(r"\*+" + re.escape(secret[-2:]), masked), masked  # the last two characters stay


@pytest.mark.parametrize("text", [
    "policy credito_b2b revision 12 published from /srv/policies/credito_b2b.regua",
    '127.0.0.1:53018 - "POST /evaluate/credito_b2b HTTP/1.1" 200',
    "decision 01M82MC80EM22YQZ5DG24RVZ3E took 1.25 ms",
])
def test_mask_text_leaves_ordinary_text_alone(text):
    assert mask_text(text) == text


def test_mask_text_hides_url_encoded_documents_anywhere_in_a_url():
    line = '127.0.0.1:53018 - "GET /decisions?documento=11.222.333%2F0001-81 HTTP/1.1" 200'
    assert "11.222.333%2F0001-81" not in mask_text(line)


def log_through_masking(emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("regua.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_the_masking_filter_masks_arguments():
    output = log_through_masking(lambda log: log.warning("consulta %s de %s", "52998224725", "11.222.333/0001-81"))
    assert "52998224725" not in output and "11.222.333/0001-81" not in output and "*********25" in output


def test_the_masking_filter_masks_exception_texts():
    def emit(log):
        try:
            raise ValueError(f"CPF {CPFS[0]} recusado pelo birô")  # the document only in the exception text
        except ValueError:
            log.exception("consulta falhou")

    assert CPFS[0] not in log_through_masking(emit)


# ---- the granian runner ----
def test_granian_runner_serves_and_shuts_down_gracefully(tmp_path):
    hold = {"REGUA_STORE__FLUSH_INTERVAL_MS": "60000", "REGUA_STORE__FLUSH_MAX": "100000"}
    with ProcessServer(tmp_path, "--runner", "granian", env=hold) as server:
        assert "(granian, 1 worker(s))" in server.logs()
        with server.client() as client:
            for _ in range(20):
                response = client.post("/evaluate/credito_b2b", json={"input": ORDER})
                assert response.status_code == 200 and response.json()["outcome"] == "approve"
            assert client.get("/policies").status_code == 200
        assert server.stop() == 0
    import sqlite3

    with sqlite3.connect(server.db) as connection:  # written at shutdown: the lifespan ran under granian
        assert connection.execute("select count(*) from decisions").fetchone()[0] == 20
