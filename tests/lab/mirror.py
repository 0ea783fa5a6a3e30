"""A switch's remote mirror session, or a WAN port's encapsulation, for the lab: every frame
seen on IFACE is sent on in the headers of KIND, as a switch or an access router would.

    python3 mirror.py IFACE COLLECTOR erspan2|erspan3|gretap|gre-ip
        in GRE over a raw IP socket (protocol 47) to the collector's address; used by
        make-tunnel-captures.sh and the live end-to-end test (tests/live_e2e.rs)
    python3 mirror.py IFACE OUT_IFACE pppoe|pppoe-vlan|pppoe-qinq|pppoe-pfc|mpls
        the IP packet of each frame in a PPPoE session (untagged, in VLAN 10, in QinQ 100/10,
        with the compressed 1-byte PPP protocol field) or under two MPLS labels, sent as an
        Ethernet frame on OUT_IFACE (this kernel has no PPP and no MPLS forwarding to make them)
    python3 mirror.py IFACE TUNNEL_END ipip|sit|4in6|6in6|geneve|gtp
        the IP packet of each frame (IPv4 for ipip and 4in6, IPv6 for sit and 6in6) in IP
        protocol 4 or 41 over a raw IPv4 or IPv6 socket, as Linux's ipip, sit and ip6tnl devices
        send it (this kernel has none of them); or the Ethernet frame in Geneve (UDP 6081,
        VNI 0x123), or the IP packet in GTP-U (UDP 2152 from 2152, TEID 0x1234, with sequence
        numbers) as a mobile backhaul carries it
"""
import socket, struct, sys
iface, collector, kind = sys.argv[1], sys.argv[2], sys.argv[3]
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
# Room for bursts: a full-speed transfer outruns a Python loop for a moment.
# (SO_RCVBUFFORCE: beyond net.core.rmem_max, as root.)
rx.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 32 << 20)
rx.bind((iface, 0))
wan = kind.startswith("pppoe") or kind == "mpls"
ipinip = {"ipip": (socket.AF_INET, 4, b"\x08\x00"), "sit": (socket.AF_INET, 41, b"\x86\xdd"),
          "4in6": (socket.AF_INET6, 4, b"\x08\x00"), "6in6": (socket.AF_INET6, 41, b"\x86\xdd")}
if wan:
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    tx.bind((collector, 0))
elif kind in ipinip:
    family, proto, wanted = ipinip[kind]
    tx = socket.socket(family, socket.SOCK_RAW, proto)
elif kind in ("geneve", "gtp"):
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if kind == "gtp":
        tx.bind(("0.0.0.0", 2152))
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
        if kind == "pppoe-pfc":
            # The PPP protocol field compressed to one byte (RFC 1661 6.5), as some concentrators send.
            proto = b"\x21" if ethertype == b"\x08\x00" else b"\x57"
            body = b"\x88\x64" + struct.pack("!BBHH", 0x11, 0, 0x1234, len(ip) + 1) + proto + ip
        elif kind == "mpls":
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
    if kind in ipinip:
        if frame[12:14] != wanted:
            continue
        try:
            tx.sendto(frame[14:], (collector, 0))
        except OSError:
            pass
        continue
    if kind == "geneve":
        # Version 0, no options, protocol 0x6558 (Ethernet), VNI 0x123.
        hdr = struct.pack("!BBHI", 0, 0, 0x6558, 0x123 << 8)
        try:
            tx.sendto(hdr + frame, (collector, 6081))
        except OSError:
            pass
        continue
    if kind == "gtp":
        if frame[12:14] not in (b"\x08\x00", b"\x86\xdd"):
            continue
        ip = frame[14:]
        # Version 1, GTP, S flag; G-PDU; length after the first 8 bytes; TEID; sequence number,
        # N-PDU number, no extension header.
        hdr = struct.pack("!BBHI", 0x32, 0xFF, len(ip) + 4, 0x1234) + struct.pack("!HBB", seq & 0xFFFF, 0, 0)
        try:
            tx.sendto(hdr + ip, (collector, 2152))
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
