"""No command prints a traceback on a bad file: binary, Latin-1, empty, a folder, a FIFO. Each
gets a located error (E000 for what is not UTF-8 policy text) and a failing exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from regua.dsl.diagnostics import PolicyError
from regua.dsl.source import read_policy

REGUA = str(Path(sys.executable).with_name("regua"))
ROOT = Path(__file__).resolve().parent.parent


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {
        "binary": (b"policy x kind credit\x00\x01\x02", "binary"),
        "latin1": ("policy preço kind credit version \"1\"\n".encode("latin-1"), "not UTF-8"),
        "empty": (b"", None),
    }
    paths = {}
    for name, (data, _) in files.items():
        path = folder / f"{name}.regua"
        path.write_bytes(data)
        paths[name] = path
    (folder / "folder.regua").mkdir()
    paths["folder"] = folder / "folder.regua"
    os.mkfifo(folder / "fifo.regua")
    paths["fifo"] = folder / "fifo.regua"
    return paths


@pytest.mark.parametrize("kind", ["binary", "latin1", "folder", "fifo"])
def test_read_policy_refuses_what_is_not_policy_text_with_e000(tmp_path, kind):
    path = _bad_files(tmp_path / "bad")[kind]
    with pytest.raises(PolicyError) as raised:
        read_policy(path)
    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "E000" and diagnostic.file == str(path)


def test_read_policy_locates_the_first_bad_byte_and_drops_a_bom(tmp_path):
    path = tmp_path / "p.regua"
    path.write_bytes(b"policy p kind credit\n  # pre\xe7o\n")
    with pytest.raises(PolicyError) as raised:
        read_policy(path)
    span = raised.value.diagnostics[0].span
    assert (span.line, span.column) == (2, 8)
    path.write_bytes("\ufeffpolicy p".encode())
    assert read_policy(path) == "policy p"


COMMANDS = {
    "check": lambda path: ["check", str(path)],
    "fmt": lambda path: ["fmt", str(path)],
    "fmt --check": lambda path: ["fmt", "--check", str(path)],
    "test": lambda path: ["test", str(path)],
    "graph": lambda path: ["graph", str(path)],
    "eval": lambda path: ["eval", str(path), "--input", str(ROOT / "examples" / "pedido_b2b.json")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_command_prints_a_traceback_on_a_bad_policy_file(tmp_path, command):
    for kind, path in _bad_files(tmp_path / "bad").items():
        result = subprocess.run([REGUA, *COMMANDS[command](path)], capture_output=True, text=True, timeout=60)
        assert "Traceback" not in result.stderr + result.stdout, (command, kind, result.stderr)
        assert result.returncode in (1, 2), (command, kind, result.returncode)
        assert path.name in result.stderr, (command, kind, result.stderr)


def test_eval_reads_its_input_from_stdin_and_bad_input_files_are_located(tmp_path):
    policy = str(ROOT / "policies" / "credito_b2b.regua")
    order = (ROOT / "examples" / "pedido_b2b.json").read_text(encoding="utf-8")
    fixtures = str(ROOT / "examples" / "bureau_b2b.json")
    args = [REGUA, "eval", policy, "--fixtures", fixtures, "--as-of", "2026-11-22"]
    result = subprocess.run([*args, "--input", "-"], input=order, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outcome"] == "approve"
    latin = tmp_path / "pedido.json"
    latin.write_bytes('{"nome": "Jo\u00e3o"}'.encode("latin-1"))
    result = subprocess.run([*args, "--input", str(latin)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert json.loads(result.stderr)["code"] == "MALFORMED_JSON" and str(latin) in result.stderr


def test_eval_fail_on_sets_the_exit_status_from_the_outcome():
    args = [REGUA, "eval", str(ROOT / "policies" / "credito_b2b.regua"),
            "--input", str(ROOT / "examples" / "pedido_b2b.json"),
            "--fixtures", str(ROOT / "examples" / "bureau_b2b.json"), "--as-of", "2026-11-22"]
    assert subprocess.run([*args, "--fail-on", "deny"], capture_output=True, timeout=60).returncode == 0
    failed = subprocess.run([*args, "--fail-on", "deny", "--fail-on", "approve"], capture_output=True, text=True,
                            timeout=60)
    assert failed.returncode == 1 and json.loads(failed.stdout)["outcome"] == "approve"
