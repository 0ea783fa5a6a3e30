"""A switch's remote mirror session, or a WAN port's encapsulation, for the lab: every frame
seen on IFACE is sent on in the headers of KIND, as a switch or an access router would.

    python3 mirror.py IFACE COLLECTOR erspan2|erspan3|gretap|gre-ip
        in GRE over a raw IP socket (protocol 47) to the collector's address; used by
        make-tunnel-captures.sh and the live end-to-end test (tests/live_e2e.rs)
    python3 mirror.py IFACE OUT_IFACE pppoe|pppoe-vlan|pppoe-qinq|pppoe-pfc|mpls
        the IP packet of each frame in a PPPoE session (untagged, in VLAN 10, in QinQ 100/10,
        with the compressed 1-byte PPP protocol field) or under two MPLS labels, sent as an
        Ethernet frame on OUT_IFACE (this kernel has no PPP and no MPLS forwarding to make them)
    python3 mirror.py IFACE OUT_IFACE etag|vntag|fabricpath|cmd
        each frame with an E-Tag (802.1BR) or a VN-Tag after its addresses, as a port extender
        sends it, inside Cisco FabricPath's outer header (with an FCS), or with Cisco's inline
        metadata (TrustSec SGT 16), sent on OUT_IFACE
    python3 mirror.py IFACE COLLECTOR gre-wccp|gre-pptp|gre-mpls|gre-eoip|gre-aruba|gre-nsh
        the IP packet in GRE as a WCCP v2 redirect (with its 4-byte redirect header), as PPTP's
        enhanced GRE (version 1, call id, sequence and acknowledgment numbers, PPP with address
        and control), under an MPLS label, the Ethernet frame as MikroTik EoIP (version 1,
        protocol 0x6400, tunnel id), as an 802.11 QoS data frame in Aruba's GRE (0x8210), or
        behind a Network Service Header (metadata type 1, service path 42, index 255)
    python3 mirror.py IFACE TUNNEL_END ipip|sit|4in6|6in6|geneve|gtp
        the IP packet of each frame (IPv4 for ipip and 4in6, IPv6 for sit and 6in6) in IP
        protocol 4 or 41 over a raw IPv4 or IPv6 socket, as Linux's ipip, sit and ip6tnl devices
        send it (this kernel has none of them); or the Ethernet frame in Geneve (UDP 6081,
        VNI 0x123), or the IP packet in GTP-U (UDP 2152 from 2152, TEID 0x1234, with sequence
        numbers) as a mobile backhaul carries it
"""
import socket, struct, sys, zlib
iface, collector, kind = sys.argv[1], sys.argv[2], sys.argv[3]
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
# Room for bursts: a full-speed transfer outruns a Python loop for a moment.
# (SO_RCVBUFFORCE: beyond net.core.rmem_max, as root.)
rx.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 32 << 20)
rx.bind((iface, 0))
wan = kind.startswith("pppoe") or kind in ("mpls", "etag", "vntag", "fabricpath", "cmd")
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
        if kind in ("etag", "vntag", "fabricpath", "cmd"):
            if kind == "cmd":
                # Version 1, length 1, option SGT (length 0, type 1), SGT 16.
                out = frame[:12] + b"\x89\x09" + struct.pack("!BBHH", 1, 1, 0x0001, 16) + frame[12:]
            elif kind == "etag":
                # E-PCP 0, ingress E-CID 0x012, E-CID 0x034 (the port), extensions 0.
                out = frame[:12] + b"\x89\x3f" + struct.pack("!HHBB", 0x0012, 0x0034, 0, 0) + frame[12:]
            elif kind == "vntag":
                # Direction 0, destination VIF 0x25, source VIF 0x11.
                out = frame[:12] + b"\x89\x26" + struct.pack("!HH", 0x0025, 0x0011) + frame[12:]
            else:
                # Outer switch addresses (switch 0x123 to 0x045), ftag 1 and TTL 32, the
                # host's frame, and the FCS FabricPath carries over it.
                inner = frame + struct.pack("<I", zlib.crc32(frame))
                out = bytes.fromhex("020123000001" "020045000001") + b"\x89\x03" + struct.pack("!H", (1 << 6) | 32) + inner
            try:
                tx.send(out)
            except OSError:
                pass
            continue
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
    elif kind == "gre-nsh":
        # NSH version 0, TTL 63, length 6 words (metadata type 1), next protocol Ethernet;
        # service path 42, index 255; 16 bytes of fixed context.
        hdr = struct.pack("!HHHH", 0x0000, 0x894F, (63 << 6) | 6, 0x0103) + struct.pack("!I", (42 << 8) | 255) + bytes(16)
    elif kind == "gre-eoip":
        # MikroTik EoIP: key bit and version 1, protocol 0x6400, payload length, tunnel id 7.
        hdr = struct.pack("!HHHH", 0x2001, 0x6400, len(frame), 7)
    elif kind in ("gre-wccp", "gre-pptp", "gre-mpls", "gre-aruba"):
        if frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        if kind == "gre-wccp":
            # WCCP v2 redirect header: no alternate bucket, service 0, bucket 3.
            hdr = struct.pack("!HHI", 0x0000, 0x883E, 0x00000003)
            frame = ip
        elif kind == "gre-pptp":
            # Key (payload length, call id 0x4242), sequence and acknowledgment, version 1;
            # PPP with address and control, protocol 0x0021.
            ppp = b"\xff\x03\x00\x21" + ip
            hdr = struct.pack("!HHHHII", 0x3081, 0x880B, len(ppp), 0x4242, seq, seq)
            frame = ppp
        elif kind == "gre-mpls":
            hdr = struct.pack("!HHI", 0x0000, 0x8847, (300 << 12) | 0x100 | 64)
            frame = ip
        else:
            # 802.11 QoS data from the distribution system: DA, BSSID, SA, sequence control,
            # QoS control (TID 0), then LLC/SNAP with the ethertype.
            wlan = struct.pack("!BBH", 0x88, 0x02, 0) + frame[0:6] + bytes.fromhex("02aa00000001") + frame[6:12]
            wlan += struct.pack("<HH", (seq & 0xFFF) << 4, 0) + b"\xaa\xaa\x03\x00\x00\x00" + frame[12:14]
            hdr = struct.pack("!HH", 0x0000, 0x8210) + wlan
            frame = ip
    else:  # gre-ip: the IP packet (without Ethernet) in GRE with key 42
        if frame[12:14] != b"\x08\x00":
            continue
        frame = frame[14:]
        hdr = struct.pack("!HHI", 0x2000, 0x0800, 42)
    try:
        tx.sendto(hdr + frame, (collector, 0))
    except OSError:
        pass
