#!/usr/bin/env python3
"""A hostile LAN host (or many) against the dashboard while it captures (benches/web_load.sh
runs this beside a replay): until the file STOP exists, it keeps trying to hold HALF (default
1,500) half-sent requests open from one host, 127.0.0.2 (slowloris), sends wrong passwords from 60
addresses (127.0.1.x) as fast as they are answered, and 20 clients read the JSON API with a
session. Prints one JSON object: guesses answered and how (status counts), held connections,
API requests and their p50/p99 latency (ms)."""
import http.client, json, os, socket, sys, threading, time, urllib.parse

host, port, password, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
half = int(os.environ.get("HALF", "1500"))
stop = lambda: os.path.exists(stop_file)
lock = threading.Lock()
out = {"guesses": {}, "held_max": 0, "api_requests": 0, "api_errors": 0}
lat = []

def slowloris():
    held = []
    i = 0
    while not stop():
        held = [s for s in held if s.fileno() != -1]
        while len(held) < half and not stop():
            src = "127.0.0.2"
            i += 1
            try:
                s = socket.create_connection((host, port), timeout=2, source_address=(src, 0))
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                held.append(s)
            except OSError:
                break
        alive = []
        for s in held:
            try:
                s.sendall(b"a")
                alive.append(s)
            except OSError:
                s.close()
        held = alive
        with lock:
            out["held_max"] = max(out["held_max"], len(held))
        time.sleep(1)
    for s in held:
        s.close()

def guesser(n):
    src = "127.0.1.%d" % (1 + n)
    while not stop():
        try:
            c = http.client.HTTPConnection(host, port, timeout=30, source_address=(src, 0))
            c.request("POST", "/login", urllib.parse.urlencode({"password": "guess-%d" % n}),
                      {"Content-Type": "application/x-www-form-urlencoded"})
            r = c.getresponse(); r.read(); c.close()
            with lock:
                out["guesses"][str(r.status)] = out["guesses"].get(str(r.status), 0) + 1
        except OSError:
            with lock:
                out["guesses"]["error"] = out["guesses"].get("error", 0) + 1
            time.sleep(0.1)

def reader(n):
    src = ("127.0.3.%d" % (1 + n), 0)
    cookie = ""
    while not cookie and not stop():
        try:
            c = http.client.HTTPConnection(host, port, timeout=30, source_address=src)
            c.request("POST", "/login", urllib.parse.urlencode({"password": password}),
                      {"Content-Type": "application/x-www-form-urlencoded"})
            r = c.getresponse(); r.read()
            cookie = r.getheader("Set-Cookie", "").split(";")[0]
        except OSError:
            time.sleep(0.1)
    paths = ["/api/status", "/api/alerts", "/api/counters", "/"]
    i = 0
    while not stop():
        t = time.time()
        try:
            c.request("GET", paths[i % len(paths)], headers={"Cookie": cookie})
            r = c.getresponse(); r.read()
            with lock:
                out["api_requests"] += 1
                lat.append((time.time() - t) * 1000)
                if r.status != 200:
                    out["api_errors"] += 1
        except OSError:
            with lock:
                out["api_errors"] += 1
            c = http.client.HTTPConnection(host, port, timeout=30, source_address=src)
        i += 1

threads = [threading.Thread(target=slowloris)] + [threading.Thread(target=guesser, args=(n,)) for n in range(60)] \
    + [threading.Thread(target=reader, args=(n,)) for n in range(20)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p))], 1) if lat else None
out["api_p50_ms"], out["api_p99_ms"] = pct(0.5), pct(0.99)
print(json.dumps(out))
