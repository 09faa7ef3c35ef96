"""SQLite writers queue on a file lock instead of polling in SQLite's busy handler."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from dispatcher.db.engine import Store, WriterLock


def test_a_second_process_waits_for_the_holder_and_gets_in_after_it(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db-writer"))
    read_end, write_end = os.pipe()
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: forked while the parent holds the lock
            try:
                with lock:
                    os.write(write_end, f"{time.monotonic()}\n".encode())
            finally:
                os._exit(0)
        time.sleep(0.3)
        released_at = time.monotonic()
    os.waitpid(pid, 0)
    got_in_at = float(os.read(read_end, 100).decode())
    os.close(read_end)
    os.close(write_end)
    # Without re-opening after fork, the child would share the parent's lock and get
    # in at once; with it, the child waits for the release.
    assert got_in_at >= released_at


def test_the_lock_is_reentrant_in_a_thread_and_excludes_other_threads(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db-writer"))
    order: list[str] = []
    with lock:
        with lock:  # nested sessions in one thread must not deadlock
            order.append("inner")

        def other() -> None:
            with lock:
                order.append("other")

        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.1)
        order.append("outer-still-held")
    t.join(5)
    assert order == ["inner", "outer-still-held", "other"]


def test_only_file_databases_get_a_writer_lock(tmp_path: Path) -> None:
    file_store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    memory_store = Store("sqlite://")
    try:
        assert file_store._writer_lock is not None
        assert file_store._writer_lock.path == f"{tmp_path / 'x.db'}-writer"
        assert memory_store._writer_lock is None
        with file_store.session(write=True) as session:
            session.connection().exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert (tmp_path / "x.db-writer").exists()
    finally:
        file_store.dispose()
        memory_store.dispose()
