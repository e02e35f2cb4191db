#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs (fuzz/seeds/<target>/): real TABLE_MAP and rows events
recorded from a throwaway MariaDB (FULL and NO_LOG row metadata), the DDL that made the
tables, hand-encoded MySQL binary JSON values, and position texts of every kind.

Run from the workspace root: python3 fuzz/seeds/record.py
It needs mariadbd, mariadb-install-db and the mariadb client on PATH (or in /usr/sbin); the
server listens on a unix socket only and is stopped at the end.
"""

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SEEDS = os.path.dirname(os.path.abspath(__file__))

QUERY, TABLE_MAP = 2, 19
ROWS = {23, 24, 25, 30, 31, 32}
UPDATES = {24, 31}

# Every column type family the decoder knows, MariaDB's own (UUID, INET4/6, JSON) included.
TABLE = """CREATE TABLE t (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  ti TINYINT, si SMALLINT UNSIGNED, mi MEDIUMINT, bi BIGINT UNSIGNED, y YEAR,
  f FLOAT, d DOUBLE, dec1 DECIMAL(14,4), dec2 DECIMAL(65,30),
  dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP(2) NULL, b BIT(13),
  c CHAR(5) CHARACTER SET latin1, v VARCHAR(300), vb VARBINARY(20), tx TEXT, bl BLOB,
  e ENUM('new','paid','it''s'), s SET('a','b','c'), j JSON, u UUID, i4 INET4, i6 INET6,
  g POINT
) DEFAULT CHARSET=utf8mb4"""

ROWS_SQL = [
    """INSERT INTO t VALUES (1, -128, 65535, -8388608, 18446744073709551615, 2024,
      1.5, -2.25e-300, '-1234567890.1234', '12345678901234567890123456789012345.123456789012345678901234567890',
      '2024-02-29', '-838:59:59.999', '2024-02-29 12:34:56.123456', '2038-01-19 03:14:07.99', b'1010101010101',
      'café', REPEAT('Grüße 東京 😀 ', 10), x'00ff10', 'long text', x'deadbeef',
      'it''s', 'a,c', '{"k": [1, 2.5, "x", null, true, {"n": {}}]}', '123e4567-e89b-12d3-a456-426614174000',
      '192.168.0.1', '2001:db8::1', ST_GeomFromText('POINT(1 2)'))""",
    """INSERT INTO t (id, dt, dtm) VALUES (2, '0000-00-00', '0000-00-00 00:00:00')""",
    "UPDATE t SET v = 'changed', e = 'paid', s = '', j = '[]' WHERE id = 1",
    "DELETE FROM t WHERE id = 2",
]

DDL = [
    "ALTER TABLE t ADD COLUMN extra VARCHAR(10) CHARACTER SET latin1 AFTER id, DROP COLUMN g",
    "ALTER TABLE t MODIFY e ENUM('new','paid','it''s','gone') NOT NULL, RENAME COLUMN tx TO body",
    "ALTER TABLE t CONVERT TO CHARACTER SET latin1",
    "CREATE TABLE t2 LIKE t",
    "RENAME TABLE t2 TO t3",
    "CREATE TABLE k (a INT, b VARCHAR(5), doc LONGTEXT CHECK (json_valid(doc)), PRIMARY KEY (b(2), a))",
    "ALTER TABLE k DROP PRIMARY KEY, ADD PRIMARY KEY (a)",
    "DROP TABLE t3",
]


def server_binary(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


class MariaDb:
    def __init__(self, root):
        self.root = root
        self.sock = os.path.join(root, "sock")
        data = os.path.join(root, "data")
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run([server_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                        "--auth-root-authentication-method=normal", "--skip-test-db", *user],
                       check=True, capture_output=True)
        self.proc = subprocess.Popen([
            server_binary("mariadbd"), "--no-defaults", *user, f"--datadir={data}",
            f"--socket={self.sock}", "--skip-networking", "--server-id=1",
            f"--log-bin={data}/bin", "--binlog-format=ROW", "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL", "--binlog-checksum=NONE",
            "--character-set-server=utf8mb4", "--innodb-buffer-pool-size=32M",
            f"--log-error={root}/error.log"])
        for _ in range(300):
            if self.sql("SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        sys.exit("mariadbd did not start: " + open(f"{root}/error.log").read()[-2000:])

    def sql(self, text, db=None, check=True):
        args = [server_binary("mariadb"), "--no-defaults", "-uroot", f"--socket={self.sock}",
                "--batch", "--skip-column-names", "--default-character-set=utf8mb4",
                "--init-command=SET time_zone = '+00:00'"]
        if db:
            args.append(db)
        done = subprocess.run(args, input=text.encode(), capture_output=True)
        if check and done.returncode != 0:
            sys.exit(f"{text[:80]}...: {done.stderr.decode()}")
        return done

    def binlog(self):
        name = self.sql("SHOW MASTER STATUS").stdout.split()[0].decode()
        with open(os.path.join(self.root, "data", name), "rb") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def events(binlog):
    """(type, body) of every event (checksums are off)."""
    assert binlog[:4] == b"\xfebin"
    pos = 4
    while pos + 19 <= len(binlog):
        kind = binlog[pos + 4]
        size = struct.unpack_from("<I", binlog, pos + 9)[0]
        yield kind, binlog[pos + 19:pos + size]
        pos += size


def lenenc(b, i):
    first = b[i]
    if first < 251:
        return first, i + 1
    width = {0xfc: 2, 0xfd: 3, 0xfe: 8}[first]
    return int.from_bytes(b[i + 1:i + 1 + width], "little"), i + 1 + width


def query_of(body):
    db_len = body[8]
    status_len = struct.unpack_from("<H", body, 11)[0]
    start = 13 + status_len
    db = body[start:start + db_len]
    return db, body[start + db_len + 1:]


def rows_parts(kind, body):
    """The columns bitmap and the row images of a rows event."""
    i = 8
    if kind >= 30:
        extra = struct.unpack_from("<H", body, i)[0]
        i += extra
    count, i = lenenc(body, i)
    width = (count + 7) // 8
    present = body[i:i + width]
    i += width * (2 if kind in UPDATES else 1)
    return present, body[i:]


def event_stream(first, stream):
    """A binlog_events input: flags and skip, then each event's type and data."""
    return bytes(first) + b"".join(bytes([kind]) + struct.pack("<H", len(body)) + body
                                   for kind, body in stream)


def fixture_events(path):
    """Events of the tracker's recorded fixtures: u32 record length, 19-byte header, data."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 4 <= len(data):
        size = struct.unpack_from("<I", data, pos)[0]
        record = data[pos + 4:pos + 4 + size]
        yield record[4], record[19:]
        pos += 4 + size


def frame(first, chunks, rest):
    out = bytes(first)
    for c in chunks:
        out += struct.pack("<H", len(c)) + c
    return out + rest


def strip_optional_metadata(table_map):
    """The TABLE_MAP as NO_LOG writes it: everything up to the null bitmap."""
    i = 8
    i += 1 + table_map[i] + 1
    i += 1 + table_map[i] + 1
    count, i = lenenc(table_map, i)
    i += count
    meta_len, i = lenenc(table_map, i)
    return table_map[:i + meta_len + (count + 7) // 8]


def write(target, data, name=None):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def record_binlog_seeds():
    root = tempfile.mkdtemp(prefix="fuzz-seeds-")
    server = MariaDb(root)
    try:
        server.sql("CREATE DATABASE shop")
        server.sql(TABLE, db="shop")
        for statement in ROWS_SQL:
            server.sql(statement, db="shop")
        for statement in DDL:
            server.sql(statement, db="shop")
        server.sql("INSERT INTO k VALUES (1, 'ab', '{\"a\": 1}')", db="shop")
        binlog = server.binlog()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    stream = list(events(binlog))
    no_log = [(k, strip_optional_metadata(b) if k == TABLE_MAP else b) for k, b in stream]
    write("binlog_events", event_stream([1, 0], stream), "recorded-full")
    write("binlog_events", event_stream([1, 0], no_log), "recorded-no-log")
    write("binlog_events", event_stream([3, 1], no_log), "recorded-no-log-by-gtid-skip-1")
    fixtures = os.path.join(SEEDS, "..", "..", "crates", "stream-mysql", "tests", "fixtures", "binlog")
    for name, flags in [("by_file", 5), ("by_gtid", 7)]:  # CRC32 checksums
        path = os.path.join(fixtures, name + ".bin")
        if os.path.exists(path):
            write("binlog_events", event_stream([flags, 0], fixture_events(path)), "fixture-" + name)
    ddl_log = []  # (db, statement) in binlog order
    table_map = None
    for kind, body in events(binlog):
        if kind == QUERY:
            db, sql = query_of(body)
            if sql.upper().startswith((b"CREATE", b"ALTER", b"RENAME", b"DROP")):
                ddl_log.append((db, sql))
        elif kind == TABLE_MAP:
            table_map = body
        elif kind in ROWS and table_map:
            present, images = rows_parts(kind, body)
            db = ddl_log[-1][0] if ddl_log else b""
            ddl = db + b"".join(b"\0" + sql for d, sql in ddl_log if d == db)
            # FULL metadata: names in the TABLE_MAP; NO_LOG: names from the DDL.
            write("binlog_rows", frame([1], [ddl, table_map, present], images))
            write("binlog_rows", frame([1], [ddl, strip_optional_metadata(table_map), present], images))
    for n in range(1, len(ddl_log) + 1):
        write("ddl", bytes([1]) + b"shop" + b"".join(b"\0" + sql for _, sql in ddl_log[:n]))


# MySQL binary JSON (the small formats), encoded by hand after MySQL's json_binary.cc.
def jsonb(value):
    tag, payload = jsonb_value(value)
    return bytes([tag]) + payload


def jsonb_value(value):
    if value is None:
        return 0x04, b"\x00"
    if value is True:
        return 0x04, b"\x01"
    if value is False:
        return 0x04, b"\x02"
    if isinstance(value, int):
        if -(1 << 15) <= value < (1 << 15):
            return 0x05, struct.pack("<h", value)
        if -(1 << 31) <= value < (1 << 31):
            return 0x07, struct.pack("<i", value)
        if value >= (1 << 63):
            return 0x0a, struct.pack("<Q", value)
        return 0x09, struct.pack("<q", value)
    if isinstance(value, float):
        return 0x0b, struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode()
        return 0x0c, varlen(len(data)) + data
    if isinstance(value, list):
        return 0x02, container([None] * len(value), value)
    if isinstance(value, dict):
        return 0x00, container(list(value.keys()), list(value.values()))
    raise TypeError(value)


def varlen(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def container(keys, values):
    """A small object or array: count, size, key entries, value entries, keys, values."""
    count = len(values)
    is_object = keys and keys[0] is not None
    header = 4 + (4 * count if is_object else 0) + 3 * count
    key_bytes = b""
    key_entries = b""
    if is_object:
        for k in keys:
            kb = k.encode()
            key_entries += struct.pack("<HH", header + len(key_bytes), len(kb))
            key_bytes += kb
    value_entries = b""
    value_bytes = b""
    for v in values:
        tag, payload = jsonb_value(v)
        if tag in (0x04, 0x05, 0x06):
            value_entries += bytes([tag]) + payload.ljust(2, b"\x00")
        else:
            offset = header + len(key_bytes) + len(value_bytes)
            value_entries += bytes([tag]) + struct.pack("<H", offset)
            value_bytes += payload
    body = key_entries + value_entries + key_bytes + value_bytes
    return struct.pack("<HH", count, 4 + len(body)) + body


def write_json_seeds():
    docs = [
        None, True, 7, -40000, 1 << 40, (1 << 64) - 1, 2.5, "Grüße",
        [], {}, [1, -2], {"a": 1, "b": [True, None, "x"]},
        {"order": {"id": 7, "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 1.5}]}},
        [[[[["deep"]]]]],
        # A large document, so inputs may grow big enough to nest hundreds deep.
        {"items": [{"sku": f"S-{i}", "qty": i, "price": i * 0.5, "tags": ["a", i % 3 == 0]}
                   for i in range(300)]},
    ]
    for doc in docs:
        write("binary_json", jsonb(doc))


def write_position_seeds():
    for text in [
        "binlog:mysql-bin.000003:1234+2",
        "binlog:odd:name.000001:4+17",
        "mariadb-gtid:0-1-100,1-2-7+3",
        "mariadb-gtid:+0",
        "mysql-gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7+1",
        "mysql-gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2:blue:4-9+0",
        "mongodb:gmVCb3Jn",
        "mongodb-time:1700000000.3",
        "mongodb-snapshot:eyJ0IjoxNzAwMDAwMDAwLCJpIjozLCJjb2xsZWN0aW9uIjoic2hvcC5vcmRlcnMiLCJhZnRlciI6bnVsbH0",
        "mongodb-poll:eyJjdXJzb3JzIjp7fX0",
        "mysql-poll:eyJjdXJzb3JzIjp7InNob3Aub3JkZXJzIjp7ImF0IjoiMTciLCJrZXkiOm51bGx9fX0+0",
        "app:1732272000000.3",
        "mysql-snapshot:eyJmaWxlIjoibXlzcWwtYmluLjAwMDAwMSIsIm9mZnNldCI6NCwidGFibGUiOiJzaG9wLm9yZGVycyIsImFmdGVyIjoie1wiaWRcIjo3fSJ9+0",
        "0-1-100,1-2-7",
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7,aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee:1",
        "shop.*", "*.audit_?", "db.system.views",
    ]:
        write("position", text.encode())


if __name__ == "__main__":
    record_binlog_seeds()
    write_json_seeds()
    write_position_seeds()
    for target in sorted(os.listdir(SEEDS)):
        path = os.path.join(SEEDS, target)
        if os.path.isdir(path):
            print(f"{target}: {len(os.listdir(path))} seeds")
