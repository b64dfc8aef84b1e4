"""regua/file_changes.py: told of every write to a SQLite file's files, by any process, and of
nothing else. Real files, real second processes (Linux inotify)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from regua.file_changes import FileChanges

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def commit_elsewhere(path: str, sql: str = "insert into t values (1)", journal: str = "wal") -> None:
    """One committed transaction by another process (it exits, closing its connection)."""
    script = ("import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              f"db.execute('pragma journal_mode = {journal}')\n"
              "db.execute('create table if not exists t (x)')\n"
              f"db.execute({sql!r})\n")
    subprocess.run([sys.executable, "-c", script, path], check=True, timeout=60)


def test_first_call_then_nothing_until_a_commit(tmp_path):
    path = str(tmp_path / "regua.db")
    commit_elsewhere(path)
    changes = FileChanges.open(path)
    assert changes is not None
    assert changes.changed() is True  # nothing is known before the first look
    assert changes.changed() is False
    commit_elsewhere(path)
    assert changes.changed() is True
    assert changes.changed() is False
    changes.close()
    assert changes.changed() is True  # closed: never claims the file is unchanged


def test_a_commit_while_this_process_keeps_the_wal_open(tmp_path):
    """The server holds connections, so commits of others go to an existing -wal."""
    path = str(tmp_path / "regua.db")
    commit_elsewhere(path)
    mine = sqlite3.connect(path, isolation_level=None)
    mine.execute("select count(*) from t").fetchone()
    changes = FileChanges.open(path)
    changes.changed()
    for _ in range(3):
        commit_elsewhere(path)
        assert changes.changed() is True
        assert changes.changed() is False
    mine.execute("insert into t values (2)")  # a commit of this process counts as well
    assert changes.changed() is True
    mine.close()


def test_other_files_in_the_folder_are_not_changes(tmp_path):
    path = str(tmp_path / "regua.db")
    commit_elsewhere(path)
    changes = FileChanges.open(path)
    changes.changed()
    commit_elsewhere(path + ".notifications.db")  # the outbox beside the store
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "regua.db.bak").write_text("x")
    assert changes.changed() is False


def test_a_rollback_journal_commit_is_seen(tmp_path):
    path = str(tmp_path / "regua.db")
    commit_elsewhere(path, journal="delete")
    changes = FileChanges.open(path)
    changes.changed()
    commit_elsewhere(path, journal="delete")
    assert changes.changed() is True


def test_a_symlinked_file_is_watched_where_it_lives(tmp_path):
    real = tmp_path / "data"
    real.mkdir()
    commit_elsewhere(str(real / "regua.db"))
    (tmp_path / "link.db").symlink_to(real / "regua.db")
    changes = FileChanges.open(str(tmp_path / "link.db"))
    changes.changed()
    commit_elsewhere(str(real / "regua.db"))
    assert changes.changed() is True


def test_a_removed_folder_means_always_changed(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    path = str(folder / "regua.db")
    commit_elsewhere(path)
    changes = FileChanges.open(path)
    changes.changed()
    shutil.rmtree(folder)
    os.makedirs(folder)
    commit_elsewhere(path)  # a new folder under the old name is not watched: say so for ever
    assert changes.changed() is True
    assert changes.changed() is True


def test_without_inotify_there_is_no_watch(tmp_path, monkeypatch):
    import regua.file_changes as module

    class NoInotify:
        def inotify_init1(self, flags):
            raise AttributeError("inotify_init1")

    monkeypatch.setattr(module, "_inotify", lambda: NoInotify())
    assert FileChanges.open(str(tmp_path / "regua.db")) is None
