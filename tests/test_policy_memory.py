"""Memory held by compiled policies (issue 13, point 6): a server that publishes version after
version keeps only the active versions and a few recently used ones compiled; older versions
are compiled again on demand (a rollback still works)."""

from __future__ import annotations

import gc
import linecache
import weakref

from server_harness import ThreadedServer, sandbox_settings

from regua.engine import compiler

SOURCE = (compiler.Path(__file__).resolve().parent.parent / "policies" / "credito_b2b.regua").read_text(
    encoding="utf-8")


def version(k: int) -> str:
    return SOURCE.replace('version "2026.11.1"', f'version "2026.12.{k}"')


def live(refs: list) -> int:
    gc.collect()
    return sum(ref() is not None for ref in refs)


def test_publishing_many_versions_keeps_only_the_recent_ones_compiled(tmp_path):
    # linecache is the process's: count only the generated modules of the versions published here
    # (other tests of this process may still hold compiled copies of credito_b2b of their own).
    before = set(linecache.cache)
    with ThreadedServer(sandbox_settings(tmp_path)) as server, server.client() as client:
        policies = server.services.policies
        refs = []
        for k in range(2 * compiler.MEMORY_CACHE_SIZE + 10):
            response = client.put("/policies/credito_b2b", json={"source": version(k)})
            assert response.status_code in (200, 201), response.text
            refs.append(weakref.ref(policies.get("credito_b2b").prepared))
        assert policies.get("credito_b2b").prepared.version == f"2026.12.{len(refs) - 1}"
        assert live(refs) <= compiler.MEMORY_CACHE_SIZE + 1  # the cache, plus the active version
        generated = [name for name in linecache.cache if name.startswith("<regua credito_b2b") and name not in before]
        assert len(generated) <= compiler.MEMORY_CACHE_SIZE + 1

        # The first revision published here fell out long ago: a rollback compiles it again.
        history = client.get("/policies/credito_b2b")
        first = min(row["revision"] for row in history.json()["versions"] if row["version"] == "2026.12.0")
        rolled = client.post("/policies/credito_b2b/rollback", json={"revision": first})
        assert rolled.status_code == 200, rolled.text
        evaluated = client.post("/evaluate/credito_b2b", json={"dry_run": True, "input": {
            "cnpj": "11.222.333/0001-81", "faturamento_anual": 1_000_000, "data_fundacao": "2015-01-01",
            "ticket_medio": 10_000, "valor_pedido": 5_000}})
        assert evaluated.status_code == 200 and evaluated.json()["policy"]["version"] == "2026.12.0"
