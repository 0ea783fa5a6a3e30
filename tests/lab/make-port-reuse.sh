#!/usr/bin/env bash
# Regenerates tests/data/odd/lab-tcp-port-reuse-rst.pcap: a client reconnecting from the same
# port while the server still holds its previous connection (the client lost it without a word:
# its FIN/RST were dropped, as a reboot or a NAT timeout does). Linux's real behaviour follows:
# the server answers the new SYN with a challenge ACK (RFC 5961), the client resets with that
# ACK's number as sequence (RFC 793 §3.4), repeats its SYN a second later (same ISN) and the new
# connection carries 20 request/answer exchanges. The old connection moved 200 MB first, so the
# RST's sequence is ahead of the new ISN (Linux ISNs of one address/port pair grow with time).
# Captured with full frames on the router (netns.sh), only the end of the old connection.
# tshark is the oracle (tests/odd_traces.rs). Needs root, iproute2, nftables, tcpdump, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${ODD_OUT:-$here/../data/odd}
. "$here/netns.sh"
P=mwreuse
work=$(mktemp -d)
trap 'lab_down $P; rm -rf "$work"' EXIT
cat > "$work/srv.py" <<'PY'
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.2.20", 8090))
s.listen(8)
def serve(c):
    while True:
        try:
            d = c.recv(1 << 20)
        except ConnectionResetError:
            break
        if not d:
            break
        if d.startswith(b"GET"):
            c.sendall(b"OK " + d[4:].split(b"\n")[0] + b"\n")
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
cat > "$work/cli.py" <<'PY'
import socket, struct, subprocess, sys, time
def sock():
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("10.77.1.10", 40123))
    return c
old = sock()
old.connect(("10.77.2.20", 8090))
block = b"x" * (1 << 20)
for _ in range(200):
    old.sendall(block)
time.sleep(0.5)
open(sys.argv[1], "w").write("bulk done\n")
while not open(sys.argv[1]).read().startswith("capturing"):
    time.sleep(0.05)
old.sendall(b"GET /last-of-old\n")
time.sleep(0.2)
# The client loses the connection silently: FIN and RST are dropped on their way out.
subprocess.run(["nft", "add table inet gone; add chain inet gone out { type filter hook output priority 0; }; "
                "add rule inet gone out tcp flags & (fin | rst) != 0 drop"], check=True)
old.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
old.close()
time.sleep(0.2)
subprocess.run(["nft", "delete table inet gone"], check=True)
new = sock()
new.connect(("10.77.2.20", 8090))
for i in range(20):
    new.sendall(b"GET /request-%d\n" % i)
    new.recv(100)
    time.sleep(0.01)
new.close()
time.sleep(0.3)
PY
lab_up $P
ip netns exec $P-srv python3 "$work/srv.py" & srv=$!
sleep 0.5
echo > "$work/state"
ip netns exec $P-cli python3 "$work/cli.py" "$work/state" & cli=$!
until grep -q "bulk done" "$work/state"; do sleep 0.1; done
ip netns exec $P-rtr tcpdump -i $P-r0 -s 0 -U -w "$work/lab-tcp-port-reuse-rst.pcap" tcp port 8090 2>/dev/null & dump=$!
sleep 1
echo capturing > "$work/state"
wait $cli
sleep 0.5
kill $dump; wait $dump 2>/dev/null || true
kill $srv 2>/dev/null || true
lab_save "$work" lab-tcp-port-reuse-rst "$out"
