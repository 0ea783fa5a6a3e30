"""A switch's remote mirror session, for the lab: every frame seen on IFACE is sent to COLLECTOR
in the tunnel's headers over a raw IP socket (protocol 47), as a switch would. Used by
make-tunnel-captures.sh and the live end-to-end test (tests/live_e2e.rs).

    python3 mirror.py IFACE COLLECTOR erspan2|erspan3|gretap|gre-ip
"""
import socket, struct, sys
iface, collector, kind = sys.argv[1], sys.argv[2], sys.argv[3]
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
# Room for bursts: a full-speed transfer outruns a Python loop for a moment.
# (SO_RCVBUFFORCE: beyond net.core.rmem_max, as root.)
rx.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 32 << 20)
rx.bind((iface, 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
seq = 0
print("ready", flush=True)
while True:
    frame, addr = rx.recvfrom(65535)
    seq += 1
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
