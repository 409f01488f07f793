"""Plain SQLite baseline for the vault benchmark: the vault's schema, pragmas
and statements through Python's sqlite3 module. Prints writes/s and reads/s."""

import json
import sqlite3
import sys
import time

path, count = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(path, isolation_level=None)
conn.executescript(
    "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY;"
    "CREATE TABLE servers (name TEXT PRIMARY KEY NOT NULL, url TEXT NOT NULL, user TEXT, pin TEXT);"
)
started = time.perf_counter()
for n in range(count):
    conn.execute(
        "INSERT INTO servers (name, url, user, pin) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT(name) DO UPDATE SET url = ?2, user = ?3, pin = ?4",
        (f"srv-{n:05}", f"https://bmc-{n}.example.net", "root", json.dumps({"sha256": f"{n:064x}"})),
    )
write = count / (time.perf_counter() - started)
started = time.perf_counter()
for n in range(count):
    row = conn.execute("SELECT name, url, user, pin FROM servers WHERE name = ?1", (f"srv-{n:05}",)).fetchone()
    assert row is not None
read = count / (time.perf_counter() - started)
print(f"{write:.1f} {read:.1f}")
