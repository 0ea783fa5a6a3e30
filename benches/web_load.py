#!/usr/bin/env python3
"""50 concurrent dashboard clients (benches/web_load.sh runs this): log in once, then each
client requests the JSON API and two pages in a loop over a keep-alive connection until the
file STOP exists. Each client has its own loopback address (127.0.2.N), as the LAN hosts of a
branch have: the dashboard caps connections per address. Prints one JSON object: requests, errors, latency percentiles (ms)."""
import http.client, json, os, sys, threading, time, urllib.parse

host, port, password, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
clients = int(os.environ.get("CLIENTS", "50"))
paths = ["/api/status", "/api/counters", "/api/counters/bytes-per-client-mac", "/api/retransmissions",
         "/api/app-errors", "/api/identities?q=10.", "/api/alerts", "/", "/retransmissions", "/metrics"]

def login():
    for _ in range(100):
        try:
            c = http.client.HTTPConnection(host, port, timeout=10)
            c.request("POST", "/login", urllib.parse.urlencode({"password": password, "next": "/"}),
                      {"Content-Type": "application/x-www-form-urlencoded"})
            r = c.getresponse(); r.read()
            cookie = r.getheader("Set-Cookie", "").split(";")[0]
            if cookie:
                return cookie
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("no login")

cookie = login()
token = open(os.environ["TOKEN_FILE"]).read().strip()
lat, errors, statuses = [], [], {}
lock = threading.Lock()

def client(i):
    src = ("127.0.2.%d" % (1 + i % 250), 0)
    conn = http.client.HTTPConnection(host, port, timeout=30, source_address=src)
    mine, bad, k = [], [], i
    while not os.path.exists(stop_file):
        path = paths[k % len(paths)]; k += 1
        hdr = {"Cookie": cookie}
        if path == "/metrics":
            hdr["Authorization"] = "Bearer " + token
        t0 = time.perf_counter()
        try:
            conn.request("GET", path, headers=hdr)
            r = conn.getresponse(); body = r.read()
            mine.append((time.perf_counter() - t0) * 1000)
            if r.status != 200 or b"database is locked" in body:
                bad.append(f"{path} {r.status} {body[:120]!r}")
        except OSError as e:
            bad.append(f"{path} {e}")
            src = ("127.0.2.%d" % (1 + i % 250), 0)
    conn = http.client.HTTPConnection(host, port, timeout=30, source_address=src)
    with lock:
        lat.extend(mine); errors.extend(bad)

threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p))], 1) if lat else None
print(json.dumps({"clients": clients, "requests": len(lat), "errors": len(errors), "first_errors": errors[:5],
                  "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1.0)}))
