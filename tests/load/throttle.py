#!/usr/bin/env python3
"""A rate-limiting HTTP proxy in front of a registry, for the fleet load test.

usage: throttle.py LISTEN_PORT UPSTREAM_HOST:PORT STATS_FILE [RATE] [BURST]

Every request takes a token from one bucket (BURST tokens, refilled at RATE per second);
with none left it is answered `429 Too Many Requests` with `Retry-After: 1`, as a registry
under a fleet's load (Docker Hub, a Harbor quota) answers. Everything else is forwarded to
the registry and streamed back. On SIGTERM it writes what it saw to STATS_FILE as JSON:
requests, 429s, and the request count of the busiest second.
"""

import http.client
import http.server
import json
import signal
import sys
import threading
import time

CHUNK = 1 << 16


class Bucket:
    def __init__(self, rate, burst):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.throttled = 0
        self.per_second = {}

    def count(self, throttled):
        with self.lock:
            self.requests += 1
            self.throttled += throttled
            second = int(time.monotonic())
            self.per_second[second] = self.per_second.get(second, 0) + 1

    def as_dict(self):
        with self.lock:
            return {"requests": self.requests, "throttled": self.throttled,
                    "peak_per_second": max(self.per_second.values(), default=0)}


def handler(upstream, bucket, stats):
    host, port = upstream.rsplit(":", 1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            allowed = bucket.take()
            stats.count(not allowed)
            if not allowed:
                body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
                self.send_response(429)
                self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(self.command, self.path, headers=headers)
            answer = conn.getresponse()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("connection", "transfer-encoding"):
                    self.send_header(key, value)
            length = answer.getheader("Content-Length")
            if length is None and self.command != "HEAD":
                body = answer.read()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.end_headers()
                while self.command != "HEAD":
                    chunk = answer.read(CHUNK)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
            conn.close()

        do_GET = forward
        do_HEAD = forward

    return Handler


def main(argv):
    port, upstream, stats_file = int(argv[1]), argv[2], argv[3]
    rate = float(argv[4]) if len(argv) > 4 else 40.0
    burst = float(argv[5]) if len(argv) > 5 else 20.0
    stats = Stats()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                             handler(upstream, Bucket(rate, burst), stats))
    server.daemon_threads = True

    def stop(*_):
        with open(stats_file, "w") as f:
            json.dump(stats.as_dict(), f)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
