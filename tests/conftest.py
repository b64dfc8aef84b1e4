import os

import pytest
from hypothesis import HealthCheck, settings

# CI machines are small and noisy: no per-example deadline, a bounded number of examples.
settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL for the session (tests/postgres_harness.py): started on first use.
    Its data lives in a folder of its own, not under pytest's temporary folders, which a
    concurrent pytest run on the same machine may prune while this session still runs."""
    import shutil
    import tempfile
    from pathlib import Path

    from postgres_harness import PostgresForTests

    folder = Path(tempfile.mkdtemp(prefix="regua-postgres-"))
    server = PostgresForTests(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request, tmp_path):
    """Where a test's server store lives, once per backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "regua.db")
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Run the test once per store backend: the servers it starts (tests/server_harness.py) use a
    SQLite file, then a fresh PostgreSQL database. Returns the store's location."""
    import server_harness

    if request.param == "sqlite":
        yield str(tmp_path / "regua.db")
        return
    url = request.getfixturevalue("postgres_url")
    server_harness.STORE_URL = url
    try:
        yield url
    finally:
        server_harness.STORE_URL = None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_backend(request, tmp_path_factory):
    """For a module-scoped server: its store settings, once per backend (a SQLite file, then a
    PostgreSQL database), e.g. `sandbox_settings(folder, store=module_backend)`."""
    if request.param == "sqlite":
        yield {"path": str(tmp_path_factory.mktemp("sqlite") / "regua.db")}
        return
    postgres_server = request.getfixturevalue("postgres_server")
    url = postgres_server.new_database()
    yield {"url": url}
    postgres_server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def collection_backend(request, tmp_path):
    """Run a collection or monitoring test once per backend: `collection_harness.store_at(tmp_path)`
    is a SQLite file, then a fresh PostgreSQL database. Returns the store's location."""
    import collection_harness

    if request.param == "sqlite":
        yield str(tmp_path / "regua.db")
        return
    url = request.getfixturevalue("postgres_url")
    collection_harness.STORE_URL, collection_harness.POSTGRES = url, request.getfixturevalue("postgres_server")
    try:
        yield url
    finally:
        for other in collection_harness._DATABASES.values():
            if other != url:
                collection_harness.POSTGRES.drop(other)
        collection_harness._DATABASES.clear()
        collection_harness.STORE_URL = collection_harness.POSTGRES = None
