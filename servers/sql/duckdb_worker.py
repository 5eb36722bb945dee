"""One DuckDB process of the local SQL engine: runs the queries its parent sends, inside an OS memory limit.

    python -I servers/sql/duckdb_worker.py DATABASE ADDRESS_SPACE_BYTES CONFIG_JSON

Why a process: DuckDB's `memory_limit` bounds its operators (hash tables, sorts, aggregates), not the values a
single scalar function builds (`rpad(x, 1e9)`, `sequence(1, 2e8)` grew past 14 GB with a 512 MB limit), and such a
call does not look at the interrupt either (20 s and more after the time limit). Here the address space is capped
by the kernel (an allocation past it is DuckDB's clean "Out of Memory"), and the parent kills the process when it
does not answer shortly after the time limit (`engines.DuckDBEngine`).

Run as a file, never imported through `servers.sql` (that would load the whole server into every worker): it
needs only the standard library and duckdb. Protocol, pickled over stdin/stdout (multiprocessing connections):
the worker sends ("ready",) once its database is open (or ("failed", message)), then for each request
(sql, max_rows, timeout_seconds) one answer: ("ok", columns, rows, truncated), ("timeout",) or ("failed", message).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any


def main(argv: list[str]) -> int:
    database, address_space, config = argv[0], int(argv[1]), json.loads(argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    requests = Connection(os.dup(0), writable=False)
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    try:
        import duckdb

        connection = duckdb.connect(database, read_only=True, config=config)
        connection.execute("SET lock_configuration = true")  # the limits above hold for every query
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which refuses to start
        answers.send(("failed", _first_line(str(exc))))
        return 1
    answers.send(("ready",))
    while True:
        try:
            sql, max_rows, timeout_seconds = requests.recv()
        except (EOFError, OSError):
            return 0  # the parent went away
        answers.send(_execute(connection, duckdb, sql, max_rows, timeout_seconds))


def _execute(connection: Any, duckdb: Any, sql: str, max_rows: int, timeout_seconds: float) -> tuple[Any, ...]:
    cursor = connection.cursor()
    timer = threading.Timer(timeout_seconds, cursor.interrupt)
    timer.start()
    try:
        result = cursor.execute(sql)
        columns = tuple(description[0] for description in result.description or ())
        rows = result.fetchmany(max_rows + 1)
        answer: tuple[Any, ...] = ("ok", columns, rows[:max_rows], len(rows) > max_rows)
    except duckdb.InterruptException:
        answer = ("timeout",)
    except duckdb.Error as exc:
        answer = ("failed", _first_line(str(exc)))
    except MemoryError:
        answer = ("failed", "Out of Memory Error: the result does not fit the engine's memory limit")
    finally:
        timer.cancel()
        cursor.close()
    return answer


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "unknown error"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
