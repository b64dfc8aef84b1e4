"""API keys with scopes, stored hashed: the guard on a real server, the configuration, `regua keys new`."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from server_harness import ROOT, ProcessServer, ThreadedServer, assert_error, b2b_order, sandbox_settings

from regua.plugins.builtin.sandbox_bureau import sandbox_document
from regua.server.auth import PUBLIC, ApiKeyMiddleware, KeyRing, RouteAccessError, hash_key
from regua.server.config import SANDBOX_KEY, ConfigError, load_settings
from regua.server.config import SCOPES as SCOPE_NAMES

REGUA = str(Path(sys.executable).parent / "regua")
KEYS = {  # name -> (key, scopes)
    "erp": ("rk_test-erp-0123456789abcdef", ["evaluate"]),
    "auditor": ("rk_test-auditor-0123456789abcdef", ["decisions:read"]),
    "admin": ("rk_test-admin-0123456789abcdef", ["policies:admin"]),
    "backoffice": ("rk_test-backoffice-0123456789", ["evaluate", "decisions:read"]),
}


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


def auth_section() -> dict:
    return {"keys": [{"name": name, "hash": hash_key(key), "scopes": scopes} for name, (key, scopes) in KEYS.items()]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Sandbox mode (synthetic bureau) with keys configured: the sandbox key no longer works.
    with ThreadedServer(sandbox_settings(tmp_path_factory.mktemp("auth"), auth=auth_section())) as srv:
        yield srv


@pytest.fixture(scope="module")
def decision_id(server) -> str:
    with server.client(bearer("erp")) as c:
        response = c.post("/evaluate/credito_b2b", json={"input": b2b_order(sandbox_document(n=1))})
        assert response.status_code == 200, response.text
        return response.json()["decision_id"]


def policy_source(version: str) -> str:
    source = (ROOT / "policies" / "credito_b2b.regua").read_text(encoding="utf-8")
    return re.sub(r'version "[^"]+"', f'version "{version}"', source, count=1)


def protected(decision_id: str) -> list[tuple[str, str, dict | None]]:
    """(method, path, json body) of endpoints that need a key, with a valid body where they take one."""
    return [("POST", "/evaluate/credito_b2b", {"input": b2b_order(sandbox_document(n=2))}),
            ("POST", "/evaluate/batch", {"policy": "credito_b2b", "items": [{"input": b2b_order()}]}),
            ("GET", "/decisions", None), ("GET", f"/decisions/{decision_id}", None),
            ("GET", "/policies", None), ("GET", "/policies/credito_b2b", None),
            ("POST", "/policies", {"source": policy_source("2026.11.1")}),
            ("POST", "/policies/credito_b2b/rollback", {"revision": 1})]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer rk_not-a-key"}, {"X-API-Key": "rk_not-a-key"},
    {"Authorization": f"Bearer {SANDBOX_KEY}"},  # configured keys turn the sandbox key off
    {"Authorization": f"Basic {KEYS['erp'][0]}"}, {"Authorization": "Bearer"},
    {"Authorization": KEYS["erp"][0]},  # the key without the scheme
    {"Authorization": f"Bearer {hash_key(KEYS['erp'][0])}"},  # the hash is not the key
], ids=["none", "wrong", "wrong-x-api-key", "sandbox", "basic", "empty", "no-scheme", "hash"])
def test_no_valid_key_is_401(server, decision_id, headers):
    with httpx.Client(base_url=server.url, headers=headers) as c:
        for method, path, body in protected(decision_id):
            response = c.request(method, path, json=body)
            assert_error(response, 401, "UNAUTHORIZED")
            assert response.headers["www-authenticate"] == "Bearer"
        # Before anything else: an anonymous client learns nothing about its body.
        malformed = c.post("/evaluate", content=b"{oops", headers={"content-type": "application/json"})
        assert_error(malformed, 401, "UNAUTHORIZED")


SCOPES = {  # (method, path) -> names of the keys allowed
    ("POST", "/evaluate/credito_b2b"): {"erp", "backoffice"},
    ("POST", "/evaluate/batch"): {"erp", "backoffice"},
    ("GET", "/decisions"): {"auditor", "backoffice"},
    ("GET", "/decisions/{id}"): {"auditor", "backoffice"},
    ("GET", "/policies"): {"erp", "backoffice", "admin"},  # who evaluates may read what they call
    ("GET", "/policies/credito_b2b"): {"erp", "backoffice", "admin"},
    ("POST", "/policies"): {"admin"},
    ("POST", "/policies/credito_b2b/rollback"): {"admin"},
}


@pytest.mark.parametrize("name", list(KEYS))
def test_each_key_reaches_exactly_its_scopes(server, decision_id, name):
    with server.client(bearer(name)) as c:
        for method, path, body in protected(decision_id):
            allowed = SCOPES[(method, path.replace(decision_id, "{id}"))]
            response = c.request(method, path, json=body)
            if name in allowed:
                assert response.status_code in (200, 201), (method, path, response.text)
            else:
                error = assert_error(response, 403, "FORBIDDEN")
                assert "scope" in error["message"], error


def test_x_api_key_header_and_the_key_name_in_the_decision_log(server):
    document = sandbox_document(n=3)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEYS["erp"][0]}) as c:
        answer = c.post("/evaluate/credito_b2b", json={"input": b2b_order(document)})
    assert answer.status_code == 200, answer.text
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEYS["auditor"][0]}) as c:
        record = c.get(f"/decisions/{answer.json()['decision_id']}")
        assert record.status_code == 200 and record.json()["api_key"] == "erp"
        assert KEYS["erp"][0] not in record.text and hash_key(KEYS["erp"][0]) not in record.text
        assert c.post("/evaluate/credito_b2b", json={"input": b2b_order(document)}).status_code == 403


def test_open_endpoints_need_no_key(server):
    for path in ("/health", "/ready", "/metrics", "/schema/openapi.json"):
        assert httpx.get(server.url + path).status_code == 200, path


# Every route fails closed: it declares the scopes that reach it, or that it is public. These are the public ones
# (load balancers, Prometheus, the OpenAPI documents, the HMAC-signed bureau events); everything else needs a key.
PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/events"}


def _handlers(app):
    for route in app.routes:
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]:
            for method in sorted(getattr(handler, "http_methods", None) or {"WEBSOCKET"}):
                yield route.path, method, handler


def test_every_route_declares_its_scope_or_that_it_is_public(server):
    seen = set()
    for path, method, handler in _handlers(server.app):
        seen.add((method, path))
        public, scope = handler.opt.get("public") is True, handler.opt.get("scope")
        assert public != (scope is not None), f"{method} {path}: declares {'both' if public else 'neither'}"
        wanted = scope if isinstance(scope, tuple) else (scope,)
        assert public or (wanted and set(wanted) <= set(SCOPE_NAMES)), (method, path, scope)
        # Console pages pass the API key middleware and are guarded by the console session instead
        # (server/console/session.py): each declares its console scopes, checked when the app is built.
        console = path.startswith("/console")
        assert public == (path in PUBLIC_PATHS or path == "/schema" or path.startswith("/schema/") or console), \
            (method, path)
        if console and not path.startswith("/console/static") and method != "OPTIONS":
            assert handler.opt.get("console"), (method, path)
    assert ("GET", "/schema/openapi.json") in seen and ("POST", "/evaluate/{policy:str}") in seen
    assert len(seen) > 40  # every method of every route, Litestar's own OPTIONS handlers included


def test_options_needs_what_its_path_needs(server):
    assert httpx.options(server.url + "/policies").status_code == 401
    assert httpx.options(server.url + "/evaluate", headers=bearer("erp")).status_code == 204
    assert httpx.options(server.url + "/policies/credito_b2b/rollback", headers=bearer("erp")).status_code == 403
    assert httpx.options(server.url + "/health").status_code == 204


def test_an_app_with_an_undeclared_route_is_not_built(tmp_path, monkeypatch):
    from litestar import get

    import regua.server.app as server_app

    @get("/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "anyone?"

    @get("/both", sync_to_thread=False, opt={"scope": "evaluate", "public": True})
    def both() -> str:
        return "?"

    @get("/typo", sync_to_thread=False, opt={"scope": "decision:read"})
    def typo() -> str:
        return "?"

    monkeypatch.setattr(server_app, "ROUTES", [*server_app.ROUTES, forgotten, both, typo])
    with pytest.raises(RouteAccessError) as error:
        server_app.create_app(sandbox_settings(tmp_path))
    message = str(error.value)
    assert "GET /forgotten: declares no access" in message and "GET /both: declares both" in message
    assert "GET /typo: unknown scope" in message


def test_the_middleware_fails_closed_on_an_undeclared_route():
    """Even in an app that skipped check_route_access: no key is 401, any key 403."""
    from litestar import Litestar, get
    from litestar.testing import TestClient

    from regua.server.config import ApiKey
    from regua.server.errors import EXCEPTION_HANDLERS

    @get("/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "anyone?"

    @get("/open", sync_to_thread=False, opt=PUBLIC)
    def open_() -> str:
        return "yes"

    ring = KeyRing([ApiKey(name="erp", hash=hash_key(KEYS["erp"][0]), scopes=list(SCOPE_NAMES))])
    app = Litestar([forgotten, open_], middleware=[ApiKeyMiddleware(ring)], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as client:
        assert client.get("/forgotten").status_code == 401
        assert_error(client.get("/forgotten", headers=bearer("erp")), 403, "FORBIDDEN")
        assert client.get("/open").text == "yes"


def test_policies_admin_publishes_and_evaluators_see_it(tmp_path):
    with ThreadedServer(sandbox_settings(tmp_path, auth=auth_section())) as srv, \
            srv.client(bearer("admin")) as admin, srv.client(bearer("erp")) as erp:
        before = erp.get("/policies/credito_b2b").json()
        assert_error(erp.post("/policies", json={"source": policy_source("2099.1.1")}), 403, "FORBIDDEN")
        published = admin.post("/policies", json={"source": policy_source("2099.1.1")})
        assert published.status_code == 201, published.text
        assert published.json() == {"name": "credito_b2b", "version": "2099.1.1", "revision": before["revision"] + 1,
                                    "created": True}
        decision = erp.post("/evaluate/credito_b2b", json={"input": b2b_order()}).json()
        assert decision["policy"] == {"name": "credito_b2b", "version": "2099.1.1",
                                      "revision": before["revision"] + 1}
        detail = admin.get("/policies/credito_b2b").json()
        assert detail["activations"][-1]["activated_by"] == "admin"


@pytest.mark.parametrize("entry,field", [
    ({"name": "erp", "hash": "sha256:abc", "scopes": ["evaluate"]}, "auth.keys[0].hash"),
    ({"name": "erp", "hash": "rk_plaintext-key-in-the-config", "scopes": ["evaluate"]}, "auth.keys[0].hash"),
    ({"name": "erp", "hash": "sha256:" + "z" * 64, "scopes": ["evaluate"]}, "auth.keys[0].hash"),  # not hex
    ({"name": "erp", "hash": hash_key("x"), "scopes": ["everything"]}, "auth.keys[0].scopes"),
])
def test_bad_key_configuration_is_named(tmp_path, entry, field):
    config = tmp_path / "regua.toml"
    scopes = ", ".join(f'"{s}"' for s in entry["scopes"])
    config.write_text(f'[[auth.keys]]\nname = "{entry["name"]}"\nhash = "{entry["hash"]}"\nscopes = [{scopes}]\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(field)):
        load_settings(config, environ={})
    # `regua serve` refuses to start, saying where the problem is.
    result = subprocess.run([REGUA, "serve", "--config", str(config), "--port", "1"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and field in result.stderr, result.stderr


def test_two_keys_with_one_name_are_refused(tmp_path):
    config = tmp_path / "regua.toml"
    config.write_text("".join(f'[[auth.keys]]\nname = "erp"\nhash = "{hash_key(k)}"\nscopes = ["evaluate"]\n'
                              for k in ("one", "two")), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("auth.keys[1].name")):
        load_settings(config, environ={})


def test_keys_new_prints_a_key_whose_hash_configures_a_real_server(tmp_path):
    def keys_new(*scopes: str) -> tuple[str, str]:
        result = subprocess.run([REGUA, "keys", "new", "--name", "erp", *(f"--scope={s}" for s in scopes)],
                                capture_output=True, text=True, timeout=60, check=True)
        (key,) = re.findall(r"^key \(shown once, give it to erp\): (\S+)$", result.stdout, re.M)
        return key, result.stdout[result.stdout.index("[[auth.keys]]"):]

    key, toml_text = keys_new("evaluate")
    other, _ = keys_new("evaluate")
    assert key != other and key.startswith("rk_") and len(key) >= 40
    assert key not in toml_text  # the configuration holds only the hash
    (entry,) = tomllib.loads(toml_text)["auth"]["keys"]
    assert entry == {"name": "erp", "hash": hash_key(key), "scopes": ["evaluate"]}

    config = tmp_path / "regua.toml"
    config.write_text(toml_text, encoding="utf-8")
    with ProcessServer(tmp_path, "--config", str(config)) as srv:
        with srv.client({"Authorization": f"Bearer {key}"}) as c:
            answer = c.post("/evaluate/credito_b2b", json={"input": b2b_order()})
            assert answer.status_code == 200, answer.text
            assert_error(c.get("/decisions"), 403, "FORBIDDEN")
        with srv.client({"X-API-Key": other}) as c:  # a key made but never configured
            assert_error(c.post("/evaluate/credito_b2b", json={"input": b2b_order()}), 401, "UNAUTHORIZED")
        with srv.client() as c:  # the sandbox key: off, since keys are configured
            assert_error(c.post("/evaluate/credito_b2b", json={"input": b2b_order()}), 401, "UNAUTHORIZED")
        assert key not in srv.logs() and key not in srv.stdout()


def test_a_basic_authorization_from_a_proxy_does_not_hide_the_x_api_key(server):
    headers = {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": KEYS["erp"][0]}
    with httpx.Client(base_url=server.url, headers=headers) as c:
        assert c.post("/evaluate/credito_b2b", json={"input": b2b_order(sandbox_document(n=5))}).status_code == 200


def test_request_ids_belong_to_the_key_that_used_them(server):
    """Another client reusing a request_id gets its own decision, never the first client's."""
    body = {"input": b2b_order(sandbox_document(n=6)), "request_id": "pedido-42"}
    answers = {}
    for name in ("erp", "backoffice"):
        with httpx.Client(base_url=server.url, headers={"X-API-Key": KEYS[name][0]}) as c:
            first, again = (c.post("/evaluate/credito_b2b", json=body) for _ in range(2))
        assert first.status_code == again.status_code == 200, first.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert first.json()["decision_id"] == again.json()["decision_id"]
        answers[name] = first.json()["decision_id"]
    assert answers["erp"] != answers["backoffice"]


@pytest.mark.parametrize("name", ['erp"\nhash = "sha256:00', "erp\\x", "", "x" * 65, "café", "a b", "erp]\n[[auth.keys]]"])
def test_keys_new_refuses_names_that_are_not_plain(name):
    from click.testing import CliRunner

    from regua.cli.keys import keys_group

    result = CliRunner().invoke(keys_group, ["new", "--name", name, "--scope", "evaluate"])
    assert result.exit_code == 2, result.output
    assert "--name" in result.output and "[[auth.keys]]" not in result.output


@pytest.mark.parametrize("value", ["erp", 'a"b', "back\\slash", "line\nbreak", "tab\tx", "bell\x07", "ação", "\x7f"])
def test_keys_toml_string_round_trips(value):
    from regua.cli.keys import toml_string

    assert tomllib.loads(f"v = {toml_string(value)}") == {"v": value}


def test_keys_new_accepts_dotted_and_dashed_names():
    from click.testing import CliRunner

    from regua.cli.keys import keys_group

    result = CliRunner().invoke(keys_group, ["new", "--name", "crm.prod-2_b", "--scope", "evaluate", "--scope", "monitoring"])
    assert result.exit_code == 0, result.output
    (entry,) = tomllib.loads(result.output[result.output.index("[[auth.keys]]"):])["auth"]["keys"]
    assert entry["name"] == "crm.prod-2_b" and entry["scopes"] == ["evaluate", "monitoring"]


def test_a_keys_access_to_a_route_is_remembered_per_key_and_route():
    """KeyRing.allows keeps each (key, route scopes) verdict: one key's access never answers for
    another key, nor for another route."""
    from regua.server.auth import KeyRing, hash_key
    from regua.server.config import ApiKey

    reader = ApiKey(name="reader", hash=hash_key("k-reader"), scopes=["decisions:read"])
    evaluator = ApiKey(name="erp", hash=hash_key("k-erp"), scopes=["evaluate"])
    ring = KeyRing([reader, evaluator])
    for _ in range(2):  # the second time from what was remembered
        assert ring.allows(evaluator, ("evaluate",)) and not ring.allows(reader, ("evaluate",))
        assert ring.allows(reader, ("decisions:read", "evaluate")) and not ring.allows(evaluator, ("decisions:read",))
