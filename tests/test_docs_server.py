"""Every HTTP example in docs/http-api.md runs against a real server, in order.

Markers (HTML comments, invisible when rendered):
- `<!-- http: METHOD PATH -->` then, for requests with a body, a ```json block;
- `<!-- status: CODE [ndjson] -->` then a ```json block: the expected response, compared as a
  subset (keys the doc leaves out are ignored; lists must have the same length; "…" matches
  anything). With `ndjson`, each line of the block is compared with each line of the answer.
Unmarked ```json blocks must still be valid JSON. The doc's tables must list every error code
the server can answer with, and every configuration field must appear in docs/operating.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import msgspec
import pytest
from server_harness import ThreadedServer, sandbox_settings

from regua.server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "http-api.md"
OPERATING_DOC = ROOT / "docs" / "operating.md"
MARKER = re.compile(r"^<!--\s*(http|status):\s*(.+?)\s*-->$")
ANY = "…"


def examples(text: str) -> list[dict]:
    """The doc's exchanges: [{"method", "path", "body", "status", "ndjson", "expected", "line"}]."""
    lines = text.split("\n")
    exchanges, current, pending_marker, i = [], None, None, 0
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line.strip())
        if marker:
            kind, value = marker.groups()
            if kind == "http":
                method, path = value.split(" ", 1)
                current = {"method": method, "path": path, "body": None, "line": i + 1}
                exchanges.append(current)
            else:
                code, *flags = value.split()
                current.update(status=int(code), ndjson="ndjson" in flags)
            pending_marker = kind
        elif line.startswith("```json"):
            end = lines.index("```", i + 1)
            block = "\n".join(lines[i + 1:end])
            if pending_marker == "http":
                current["body"] = json.loads(block)
            elif pending_marker == "status":
                current["expected"] = ([json.loads(x) for x in block.splitlines() if x.strip()]
                                       if current["ndjson"] else json.loads(block))
            else:
                json.loads(block)  # an unmarked example must at least be valid JSON
            pending_marker = None
            i = end
        i += 1
    return exchanges


def matches(expected, actual, path="$") -> list[str]:
    if expected == ANY:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += matches(value, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} item(s), got {actual!r}"]
        return [p for n, (e, a) in enumerate(zip(expected, actual)) for p in matches(e, a, f"{path}[{n}]")]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def test_matcher_is_strict_where_the_doc_is_specific():
    assert matches({"a": 1}, {"a": 1, "b": 2}) == []
    assert matches({"a": 1}, {"a": 2})
    assert matches([1], [1, 2])
    assert matches({"a": ANY}, {"a": None}) == []
    assert matches({"a": ANY}, {}) == ["$.a: missing"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("docs")), today=lambda: dt.date(2026, 11, 22)) as s:
        yield s


def test_every_http_example_runs_as_documented(server):
    exchanges = examples(API_DOC.read_text(encoding="utf-8"))
    assert len(exchanges) >= 10
    with server.client() as client:
        for exchange in exchanges:
            server.services.decision_log.wait_flushed()
            response = client.request(exchange["method"], exchange["path"], json=exchange["body"])
            where = f"docs/http-api.md:{exchange['line']} {exchange['method']} {exchange['path']}"
            assert response.status_code == exchange["status"], f"{where}: {response.status_code} {response.text}"
            if exchange["ndjson"]:
                actual = [json.loads(x) for x in response.text.splitlines() if x.strip()]
            else:
                actual = response.json()
            problems = matches(exchange["expected"], actual)
            assert not problems, f"{where}:\n" + "\n".join(problems)


def _documented_codes() -> set[str]:
    text = API_DOC.read_text(encoding="utf-8")
    return set(re.findall(r"`([A-Z][A-Z_]+)`", text))


def test_every_error_code_the_server_uses_is_documented():
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "server").rglob("*.py"))
    raised = set(re.findall(r'ApiError\(\d+, "([A-Z_]+)"', sources))
    raised |= set(re.findall(r'error_response\(\d+, "([A-Z_]+)"', sources))
    raised |= set(re.findall(r'\d{3}: "([A-Z_]+)"', sources))
    assert raised, "the scan found the server's error codes"
    missing = raised - _documented_codes()
    assert not missing, f"error codes missing from docs/http-api.md: {sorted(missing)}"


def _fields(struct, prefix=""):
    for name, field_type in zip(struct.__struct_fields__, msgspec.structs.fields(struct)):
        value_type = field_type.type
        if isinstance(value_type, type) and issubclass(value_type, msgspec.Struct):
            yield from _fields(value_type, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_configuration_field_is_documented():
    text = OPERATING_DOC.read_text(encoding="utf-8")
    missing = [name for name in _fields(Settings) if f"`{name}`" not in text]
    assert not missing, f"configuration fields missing from docs/operating.md: {missing}"
