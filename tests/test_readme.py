"""The README's quick start must work exactly as written."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from regua.dsl.formatter import format_source
from regua.engine.compiler import check_source

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_policy_checks_and_is_formatted():
    blocks = re.findall(r"```regua\n(.*?)```", README, re.S)
    assert blocks, "the README shows a policy"
    for block in blocks:
        checked = check_source(block, "README.md")
        assert checked.policy.rules
        assert format_source(block) == block


def test_readme_eval_command_prints_the_decision():
    command = re.search(r"\.venv/bin/regua eval .*?--trace rules", README, re.S).group(0)
    args = shlex.split(command.replace("\\\n", " "))
    regua = Path(sys.executable).with_name("regua")
    result = subprocess.run([str(regua), *args[1:]], cwd=ROOT, capture_output=True, text=True, check=True)
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "approve"
    assert decision["outputs"] == {"limite": "120000.00", "prazo": "28 days"}
    assert decision["policy"] == {"name": "credito_b2b", "version": "2026.11.1"}
    assert decision["connector_calls"][0]["args"] == ["************81"]  # the CNPJ never appears in clear
    assert "11222333000181" not in result.stdout


def test_readme_curl_example_is_the_one_make_serve_prints():
    """`make serve` runs `regua serve --sandbox … --port 8000`; the README shows what it prints."""
    from regua.cli.serve import curl_example
    from regua.server.config import load_settings

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    serve = re.search(r"^serve:.*\n\t(.+)$", makefile, re.M).group(1)
    assert "--sandbox" in serve and "--port 8000" in serve and "--host 127.0.0.1" in serve
    printed = curl_example(load_settings(environ={"REGUA_SANDBOX": "true"}))
    assert printed in README


def test_readme_curl_example_works_against_a_running_server(tmp_path):
    """The same command, pointed at a test port, against the real `regua serve` process."""
    from server_harness import ProcessServer

    command = re.search(r"^curl -s http://127\.0\.0\.1:8000/.*$", README, re.M).group(0)
    with ProcessServer(tmp_path) as server:
        result = subprocess.run(["bash", "-c", command.replace(":8000/", f":{server.port}/")],
                                capture_output=True, text=True, timeout=30, check=True)
        printed = re.search(r"^curl .*$", server.stdout(), re.M).group(0)
    decision = json.loads(result.stdout)
    assert decision["outcome"] == "approve" and decision["decision_id"]
    assert printed == command.replace(":8000/", f":{server.port}/")


def test_readme_collection_quick_start_runs_as_written(tmp_path):
    block = re.search(r"## Collect\n.*?```sh\n(.*?)```", README, re.S).group(1)
    regua = Path(sys.executable).with_name("regua")
    outputs = []
    for line in block.strip().splitlines():
        command = line.split("   #")[0].strip()
        args = shlex.split(command.replace("var/demo.db", str(tmp_path / "demo.db")))
        assert args[0] == ".venv/bin/regua", line
        result = subprocess.run([str(regua), *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (line, result.stderr)
        outputs.append(result.stdout)
    assert "tit-1001" in outputs[3]  # the simulation prints each receivable's timeline
    assert "sent" in outputs[5] and list((tmp_path / "outbox").glob("*.eml"))
    assert "tit-2003" in outputs[6] and "DSO" in outputs[7]


def test_readme_other_commands_run_as_written(tmp_path):
    """Every `regua` command of the "Other commands" block runs, in order, from a copy of the
    repository's policies and examples: the server from the shipped example configuration too."""
    import os
    import shutil

    from server_harness import free_port, wait_ready

    for folder in ("policies", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "regua.example.toml", tmp_path / "regua.example.toml")
    block = re.search(r"Other commands:\n\n```sh\n(.*?)```", README, re.S).group(1)
    regua = Path(sys.executable).with_name("regua")
    commands = [shlex.split(line.split("   #")[0]) for line in block.strip().splitlines()
                if line.startswith(".venv/bin/regua ")]
    assert [args[1] for args in commands][-1] == "serve"
    for args in commands[:-1]:
        result = subprocess.run([str(regua), *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    assert (tmp_path / "var" / "regua.db").exists()  # runtime files go to var/
    assert not list(tmp_path.glob("*.db*"))
    port = free_port()
    env = {**os.environ, "REGUA_SERVER__PORT": str(port)}
    server = subprocess.Popen([str(regua), *commands[-1][1:]], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not list(tmp_path.glob("*.db*"))
