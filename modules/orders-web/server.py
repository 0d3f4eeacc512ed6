#!/usr/bin/env python3
"""orders-web: the web tier of croft's 2-tier application (started by start_both on every farm node).

  POST /order         inserts one row into `orders` and answers 201 {"id": n, "node": ...} only
                      after PostgreSQL committed it; any error answers 503 and the order counts as
                      not acknowledged (it may or may not have committed: the client retries it as
                      a new order, as a user clicking again would)
  GET  /orders/count  {"count": n}
  GET  /health        200 while the service runs: the app checker (the database has its own one)

The database is reached through libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE: lib.sh sets them to the mirror's VIP). Sessions are pooled (ORDERS_POOL per node); a
session that failed is closed, never reused, so after a failover of the database the next order
opens a session to the new primary. Timeouts bound how long an order can hang on a database that
vanished without a word: 2 s to connect, TCP user timeout 3 s, statement timeout 5 s.
"""
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import psycopg2.errors

NODE = os.environ.get("ORDERS_NODE", "unknown")
PORT = int(os.environ.get("ORDERS_PORT", "8000"))
POOL = int(os.environ.get("ORDERS_POOL", "20"))
MAX_BODY = 4096  # an order is a few fields: refuse more rather than read it

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  id     bigserial PRIMARY KEY,
  client text,
  ref    text,
  node   text NOT NULL,
  at     timestamptz NOT NULL DEFAULT now()
)"""


class Pool:
    """At most `size` sessions; a request waits for a free one (bounded), failed ones are dropped."""

    def __init__(self, size):
        self._free = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._schema_done = False

    def _connect(self):
        conn = psycopg2.connect(
            connect_timeout=2,
            application_name=f"orders-web {NODE}",
            keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=2,
            tcp_user_timeout=3000,
            options="-c statement_timeout=5000",
        )
        if not self._schema_done:
            # Every node may run this at once on a new database: CREATE TABLE IF NOT EXISTS can
            # then fail on the catalog's unique index in all but one; the table exists either way.
            try:
                with conn.cursor() as cur:
                    cur.execute(SCHEMA)
                conn.commit()
            except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable):
                conn.rollback()
            except BaseException:
                conn.close()
                raise
            self._schema_done = True
        return conn

    def run(self, fn):
        """fn(conn) inside a session of the pool; the session is closed if anything failed."""
        if not self._slots.acquire(timeout=5):
            raise RuntimeError("all database sessions busy for 5 s")
        conn = None
        try:
            with self._lock:
                conn = self._free.pop() if self._free else None
            if conn is None:
                conn = self._connect()
            result = fn(conn)
            with self._lock:
                self._free.append(conn)
            conn = None
            return result
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
            self._slots.release()


pool = Pool(POOL)


def insert_order(conn, client, ref):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO orders (client, ref, node) VALUES (%s, %s, %s) RETURNING id", (client, ref, NODE))
        (oid,) = cur.fetchone()
    conn.commit()  # the answer goes out only once this returned: the order is committed
    return oid


def count_orders(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        (n,) = cur.fetchone()
    conn.rollback()
    return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orders-web"
    timeout = 10  # s: a connection idle (or sending slowly) longer than this is closed

    def _send(self, status, body):
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"ok": True, "node": NODE})
        if self.path == "/orders/count":
            try:
                return self._send(200, {"count": pool.run(count_orders), "node": NODE})
            except Exception as e:  # noqa: BLE001 - every database error is a 503 with its text
                return self._send(503, {"error": str(e).strip(), "node": NODE})
        return self._send(404, {"error": "not found: GET /health, GET /orders/count, POST /order"})

    def do_POST(self):
        if self.path != "/order":
            return self._send(404, {"error": "not found: POST /order"})
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            return self._send(400, {"error": f"content-length must be 0..{MAX_BODY}"})
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
            client, ref = body.get("client"), body.get("ref")
            for v in (client, ref):
                if v is not None and (not isinstance(v, str) or len(v) > 200):
                    raise ValueError("client and ref are strings of at most 200 characters")
        except ValueError as e:
            return self._send(400, {"error": f"bad order: {e}"})
        try:
            oid = pool.run(lambda conn: insert_order(conn, client, ref))
        except Exception as e:  # noqa: BLE001
            return self._send(503, {"error": str(e).strip(), "node": NODE})
        return self._send(201, {"id": oid, "node": NODE})

    def log_message(self, fmt, *args):
        pass  # one line per order would fill the log; errors reach the client


class Server(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNS at once (more are closed at once: a flood of
    connections cannot grow the threads without bound), each idle at most IDLE_S seconds."""

    daemon_threads = True
    request_queue_size = 256
    MAX_CONNS = 256

    def __init__(self, *args):
        super().__init__(*args)
        self._conns = threading.BoundedSemaphore(self.MAX_CONNS)

    def process_request(self, request, client_address):
        if not self._conns.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._conns.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._conns.release()


def main():
    srv = Server(("0.0.0.0", PORT), Handler)
    # TERM (stop_both): stop at once; orders in flight are not acknowledged.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"orders-web on {NODE}: port {PORT}, database {os.environ.get('PGHOST')}:{os.environ.get('PGPORT')}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
