"""A real PostgreSQL server for the test session, started by the session itself.

The `pgserver` package (the `test` extra) ships the PostgreSQL binaries in its wheel, so a fresh
clone needs nothing else: `make test` installs it, the first test that asks for PostgreSQL starts
a server in a temporary folder (a Unix socket, no TCP port), and it stops with the session.
`REGUA_TEST_POSTGRES_URL` (an admin URL, e.g. postgresql://postgres@127.0.0.1/postgres) uses
an existing server instead. Either way it is never skipped: no PostgreSQL is a failure.

Each test gets a database of its own (`new_database()`), dropped afterwards.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
import warnings
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from regua import postgres

_NAMES = itertools.count(1)


class PostgresForTests:
    def __init__(self, folder: Path):
        self._server = None
        url = os.environ.get("REGUA_TEST_POSTGRES_URL")
        if not url:
            with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR in CI, /tmp is fine
                warnings.simplefilter("ignore")
                import pgserver

                self._server = pgserver.get_server(folder, cleanup_mode="stop")
            url = self._server.get_uri()
        self.admin_url = url
        self.prefix = f"regua_test_{os.getpid()}_{uuid.uuid4().hex[:6]}_"
        with postgres.connect(self.admin_url) as conn:
            # A throwaway cluster: durability is not what these tests measure (benchmarks keep the defaults).
            if self._server is not None:
                conn.execute("alter system set fsync = off")
                conn.execute("alter system set synchronous_commit = off")
                conn.execute("select pg_reload_conf()")

    def url(self, database: str) -> str:
        return make_conninfo(self.admin_url, dbname=database) if "://" not in self.admin_url else \
            _with_database(self.admin_url, database)

    def new_database(self) -> str:
        name = f"{self.prefix}{next(_NAMES)}"
        with postgres.connect(self.admin_url) as conn:
            conn.execute(f'create database "{name}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        postgres.close_pools(url)
        name = conninfo_to_dict(url)["dbname"]
        with postgres.connect(self.admin_url) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')

    def stop(self) -> None:
        postgres.close_pools()
        if self._server is not None:
            self._server.cleanup()
            # its exit hook logs once more, after pytest has closed the captured streams
            logging.getLogger("pgserver").disabled = True


def _with_database(url: str, database: str) -> str:
    """The URL with another database name (the path of a postgresql:// URL), query kept."""
    head, _, query = url.partition("?")
    scheme, _, rest = head.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{database}" + (f"?{query}" if query else "")
