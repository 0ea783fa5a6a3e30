#!/usr/bin/env bash
# Regenerates tests/data/odd/lab-http-odd-status.pcap: curl asking a small server on a
# non-standard port (8181) for answers the field shows: a status line cut before its end and
# closed with FIN, status codes outside 100-599 (999, 600, 099) and a plain 503. Captured
# with full frames on the router between the lab namespaces (netns.sh). tshark is the oracle
# (tests/odd_traces.rs). Needs root, iproute2, tcpdump, curl, python3, editcap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${ODD_OUT:-$here/../data/odd}
. "$here/netns.sh"
P=mwodd
work=$(mktemp -d)
trap 'lab_down $P; rm -rf "$work"' EXIT
cat > "$work/srv.py" <<'PY'
import socket
answers = {
    b"/nolf": b"HTTP/1.1 500 Internal Server Error",
    b"/999": b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
    b"/600": b"HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n",
    b"/099": b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
    b"/503": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
}
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.2.20", 8181))
s.listen(8)
while True:
    c, _ = s.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        d = c.recv(4096)
        if not d:
            break
        req += d
    path = req.split(b" ")[1] if req.count(b" ") >= 2 else b""
    c.sendall(answers.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
    c.shutdown(socket.SHUT_WR)
    c.close()
PY
lab_up $P
ip netns exec $P-srv python3 "$work/srv.py" &
sleep 0.5
ip netns exec $P-rtr tcpdump -q -s 1600 -U -i $P-r1 -w "$work/lab-http-odd-status.pcap" 2>/dev/null &
td=$!
sleep 1
for p in nolf 999 600 099 503; do ip netns exec $P-cli curl -s -m 3 -o /dev/null "http://10.77.2.20:8181/$p" || true; done
sleep 1
kill "$td"; wait "$td" 2>/dev/null || true
lab_down $P
mkdir -p "$out"
lab_save "$work" lab-http-odd-status "$out"
