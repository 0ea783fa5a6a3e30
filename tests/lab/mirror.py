"""A switch's remote mirror session, or a WAN port's encapsulation, for the lab: every frame
seen on IFACE is sent on in the headers of KIND, as a switch or an access router would.

    python3 mirror.py IFACE COLLECTOR erspan2|erspan3|gretap|gre-ip
        in GRE over a raw IP socket (protocol 47) to the collector's address; used by
        make-tunnel-captures.sh and the live end-to-end test (tests/live_e2e.rs)
    python3 mirror.py IFACE OUT_IFACE pppoe|pppoe-vlan|pppoe-qinq|mpls
        the IP packet of each frame in a PPPoE session (untagged, in VLAN 10, in QinQ 100/10)
        or under two MPLS labels, sent as an Ethernet frame on OUT_IFACE (this kernel has no
        PPP and no MPLS forwarding to make them)
"""
import socket, struct, sys
iface, collector, kind = sys.argv[1], sys.argv[2], sys.argv[3]
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
# Room for bursts: a full-speed transfer outruns a Python loop for a moment.
# (SO_RCVBUFFORCE: beyond net.core.rmem_max, as root.)
rx.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 32 << 20)
rx.bind((iface, 0))
wan = kind.startswith("pppoe") or kind == "mpls"
if wan:
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((collector, 0))
else:
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
seq = 0
print("ready", flush=True)
while True:
    frame, addr = rx.recvfrom(65535)
    seq += 1
    if wan:
        ethertype = frame[12:14]
        if ethertype not in (b"\x08\x00", b"\x86\xdd"):
            continue
        ip = frame[14:]
        if kind == "mpls":
            # Two labels: 100 on top, 200 at the bottom of the stack (S bit), TTL 64.
            body = b"\x88\x47" + struct.pack("!II", (100 << 12) | 64, (200 << 12) | 0x100 | 64) + ip
        else:
            proto = 0x0021 if ethertype == b"\x08\x00" else 0x0057
            # RFC 2516 session stage: ver 1, type 1, code 0, session 0x1234, length, PPP protocol.
            body = b"\x88\x64" + struct.pack("!BBHHH", 0x11, 0, 0x1234, len(ip) + 2, proto) + ip
            if kind == "pppoe-vlan":
                body = b"\x81\x00" + struct.pack("!H", 10) + body
            elif kind == "pppoe-qinq":
                body = b"\x88\xa8" + struct.pack("!H", 100) + b"\x81\x00" + struct.pack("!H", 10) + body
        try:
            tx.send(frame[:12] + body)
        except OSError:
            pass
        continue
    if kind == "erspan2":
        # GRE with the sequence bit, protocol 0x88be; ERSPAN II: ver 1, VLAN 0, session 123.
        hdr = struct.pack("!HHI", 0x1000, 0x88BE, seq) + struct.pack("!HHI", 0x1000, 123, 0)
    elif kind == "erspan3":
        # GRE with the sequence bit, protocol 0x22eb; ERSPAN III: ver 2, session 77, timestamp,
        # SGT 0, hardware id 7, ingress, no platform subheader.
        hdr = struct.pack("!HHI", 0x1000, 0x22EB, seq) + struct.pack("!HHIHH", 0x2000, 77, seq * 1000, 0, 7 << 4)
    elif kind == "gretap":
        hdr = struct.pack("!HH", 0x0000, 0x6558)
    else:  # gre-ip: the IP packet (without Ethernet) in GRE with key 42
        if frame[12:14] != b"\x08\x00":
            continue
        frame = frame[14:]
        hdr = struct.pack("!HHI", 0x2000, 0x0800, 42)
    try:
        tx.sendto(hdr + frame, (collector, 0))
    except OSError:
        pass
