"""Odd captures made from real lab traffic, for the differential tests (tests/odd_traces.rs):
each takes a committed lab capture and changes what a field trace would show, nothing else.

    python3 tests/lab/make-odd-captures.py [OUT_DIR]     (default tests/data/odd)

  odd-dhcp-hostname-nul    the DHCP host name option sent as "nas1\\0" (a trailing NUL, as some
                           NAS firmware sends it), from lab-dhcp-dnsmasq
  odd-ipv4-short-frames    every 7th data segment of the downloads cut short on the wire: the
                           IPv4 total length says more than the frame has (not a snaplen cut),
                           from the full frames of lab-tunnel-ipip with the tunnel taken off
  odd-ipv4-source-route    the client's packets of the first download carry a loose source
                           route option (LSRR) whose next and last hop is 10.77.9.9, those of the
                           second a strict one (SSRR)
  odd-ipv4-bad-option      the client's packets of the second download carry an IPv4 option
                           whose length runs past the header (tshark notes it and reads on)
  odd-ipv4-malformed-option  server packets of the second download with a router alert or a
                           timestamp option of 3 bytes, client packets of the third with a CIPSO
                           tag running past its option (tshark: malformed, no TCP)
  odd-kerberos-tgs-cname   two TGS-REQs alone whose request body names the client ("alice",
                           the machine account "WS7$"), from lab-kerberos-kdc
  odd-smb2-kerberos-split  an SMB2 SESSION_SETUP exchange in 300-byte segments carrying, in
                           SPNEGO, the lab's AP-REQ and KRB-ERROR
  odd-tcp-header-too-long  three of the client's pure ACKs claim a 60-byte TCP header in a
                           32-byte segment (tshark: TCP, malformed, no length, no analysis)
  odd-tcp-epoch-clock      times relative to the first frame (the first SYN at the epoch)
  odd-tcp-millisecond-clock  times cut to whole milliseconds
  odd-text2pcap-short-loss8  lab-http-short-loss8 through `tshark -x | text2pcap`
"""
import os, struct, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
lab = os.path.join(here, "..", "data", "lab")
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "odd")


def read(name, folder=lab):
    b = open(os.path.join(folder, name), "rb").read()
    assert struct.unpack("<I", b[:4])[0] == 0xA1B2C3D4 and struct.unpack("<I", b[20:24])[0] == 1
    recs, i = [], 24
    while i + 16 <= len(b):
        ts, us, incl, orig = struct.unpack("<IIII", b[i : i + 16])
        recs.append([ts, us, bytearray(b[i + 16 : i + 16 + incl]), orig])
        i += 16 + incl
    return b[:24], recs


def write(name, head, recs):
    with open(os.path.join(out_dir, name), "wb") as o:
        o.write(head)
        for ts, us, f, orig in recs:
            o.write(struct.pack("<IIII", ts, us, len(f), orig) + bytes(f))
    print(f"{name}: {len(recs)} frames")


def ip_checksum(f, ihl=20):
    f[24:26] = b"\0\0"
    s = sum(struct.unpack(f"!{ihl // 2}H", bytes(f[14 : 14 + ihl])))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    f[24:26] = struct.pack("!H", ~s & 0xFFFF)


def dhcp_hostname_nul():
    head, recs = read("lab-dhcp-dnsmasq.pcap")
    for r in recs:
        f = r[2]
        k = f.find(b"\x0c\x08ws-alice")
        if k < 0:
            continue
        f[k : k + 10] = b"\x0c\x05nas1\x00"
        d = -3
        f[16:18] = struct.pack("!H", struct.unpack("!H", f[16:18])[0] + d)
        ip_checksum(f)
        f[38:40] = struct.pack("!H", struct.unpack("!H", f[38:40])[0] + d)
        f[40:42] = b"\0\0"  # UDP checksum: none (allowed over IPv4)
        r[3] = len(f)
    write("odd-dhcp-hostname-nul.pcap", head, recs)


def ipv4_short_frames():
    head, recs = plain_download()
    n = 0
    for r in recs:
        f = r[2]
        if f[12:14] != b"\x08\x00" or f[23] != 6 or len(f) < 1000:
            continue
        n += 1
        if n % 7:
            continue
        # The wire had 400 bytes fewer than the IP header says; the capture kept all it had.
        del f[len(f) - 400 :]
        r[3] = len(f)
    write("odd-ipv4-short-frames.pcap", head, recs)


def plain_download():
    """The IPIP lab download with the tunnel's outer header taken off."""
    head, recs = read("lab-tunnel-ipip.pcap", os.path.join(here, "..", "data", "tunnel"))
    for r in recs:
        del r[2][14:34]
        r[3] -= 20
    return head, recs


def with_option(f, opt):
    """f's IPv4 header with the 4-byte-padded option `opt` added."""
    opt = bytes(opt) + b"\0" * (-len(opt) % 4)
    ihl = (f[14] & 0x0F) * 4
    f[34:34] = opt
    f[14] = 0x40 | (ihl + len(opt)) // 4
    f[16:18] = struct.pack("!H", struct.unpack("!H", f[16:18])[0] + len(opt))
    ip_checksum(f, ihl + len(opt))


def client_packets_of_stream(recs, which):
    """Records of the client's packets (10.77.1.10 → server) of the `which`-th connection."""
    ports = []
    for r in recs:
        f = r[2]
        if f[12:14] == b"\x08\x00" and f[23] == 6 and f[26:30] == bytes([10, 77, 1, 10]):
            sport = f[34:36]
            if sport not in ports:
                ports.append(sport)
            if ports.index(sport) == which:
                yield r


def source_route():
    head, recs = plain_download()
    for which, kind in ((0, 0x83), (1, 0x89)):
        for r in client_packets_of_stream(recs, which):
            # Option type, length 7, pointer 4: the route's one address is still ahead, so it is
            # the final destination and the header's (the server) only the current hop.
            with_option(r[2], [kind, 7, 4, 10, 77, 9, 9])
            r[3] = len(r[2])
    write("odd-ipv4-source-route.pcap", head, recs)


def bad_option():
    head, recs = plain_download()
    for r in client_packets_of_stream(recs, 1):
        # Record route (7) claiming 40 bytes in a 4-byte option area.
        with_option(r[2], [7, 40, 4, 0])
        r[3] = len(r[2])
    write("odd-ipv4-bad-option.pcap", head, recs)


def tcp_header_too_long():
    head, recs = plain_download()
    n = 0
    for r in recs:
        f = r[2]
        if f[23] == 6 and len(f) == 66:
            n += 1
            if n in (5, 6, 7):
                f[46] = (15 << 4) | (f[46] & 0x0F)
    write("odd-tcp-header-too-long.pcap", head, recs)


def server_packets_of_stream(recs, which):
    """Records of the server's packets (→ 10.77.1.10) of the `which`-th connection."""
    ports = []
    for r in recs:
        f = r[2]
        if f[12:14] == b"\x08\x00" and f[23] == 6 and f[30:34] == bytes([10, 77, 1, 10]):
            dport = f[36:38]
            if dport not in ports:
                ports.append(dport)
            if ports.index(dport) == which:
                yield r


def malformed_option():
    # Options whose length byte is sound but shorter than their fields: tshark 4.0 reads past
    # them and ends the packet as malformed, TCP undissected. Every 4th server packet of the
    # second download carries a 3-byte router alert (94 03 00: 4 bytes are its fields), every
    # 4th after those a 3-byte timestamp (44 03 05), and the client's first 30 packets of the
    # third download a CIPSO option whose enumerated-categories tag runs one byte past it.
    head, recs = plain_download()
    for n, r in enumerate(server_packets_of_stream(recs, 1)):
        if n % 4 == 1:
            with_option(r[2], [0x94, 3, 0])
        elif n % 4 == 3:
            with_option(r[2], [0x44, 3, 5])
        r[3] = len(r[2])
    for n, r in enumerate(client_packets_of_stream(recs, 2)):
        if n < 30:
            with_option(r[2], [0x86, 11, 0, 0, 0, 1, 2, 6, 0, 1, 0])
            r[3] = len(r[2])
    write("odd-ipv4-malformed-option.pcap", head, recs)


def der_items(b):
    """The (tag, value) items of a run of DER TLVs (single-byte tags, definite lengths)."""
    out, i = [], 0
    while i < len(b):
        tag, n = b[i], b[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i : i + k], "big")
            i += k
        out.append((tag, b[i : i + n]))
        i += n
    return out


def der(tag, value):
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    k = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | k]) + n.to_bytes(k, "big") + value


def udp_checksum(f):
    # IPv4 pseudo-header, then the datagram with its checksum field zeroed.
    ihl = (f[14] & 0x0F) * 4
    udp = bytearray(f[14 + ihl :])
    udp[6:8] = b"\0\0"
    data = bytes(f[26:34]) + struct.pack("!BBH", 0, 17, len(udp)) + bytes(udp)
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    f[14 + ihl + 6 : 14 + ihl + 8] = struct.pack("!H", (~s & 0xFFFF) or 0xFFFF)


def kerberos_tgs_cname():
    # TGS-REQs seen alone (no AS exchange, no TGS-REP): the lab client's TGS-REQ with the
    # optional client name of its request body filled in, as some clients send it: "alice",
    # then the machine account "WS7$" from another port a minute later.
    head, recs = read("lab-kerberos-kdc.pcap")
    req = next(r for r in recs if len(r[2]) > 42 and r[2][23] == 17 and r[2][36:38] == b"\x00\x58" and r[2][42] == 0x6C)
    out = []
    for n, (name, sport) in enumerate(((b"alice", 50999), (b"WS7$", 51999))):
        f = bytearray(req[2])
        (app_tag, seq), = der_items(bytes(f[42:]))
        (_, items), = der_items(seq)
        fields = der_items(items)
        body_i = next(i for i, (t, _) in enumerate(fields) if t == 0xA4)
        (_, body), = der_items(fields[body_i][1])
        parts = der_items(body)
        cname = der(0xA1, der(0x30, der(0xA0, der(0x02, b"\x01")) + der(0xA1, der(0x30, der(0x1B, name)))))
        parts.insert(1, None)
        new_body = b"".join(cname if p is None else der(*p) for p in parts)
        fields[body_i] = (0xA4, der(0x30, new_body))
        msg = der(app_tag, der(0x30, b"".join(der(*p) for p in fields)))
        f[42:] = msg
        f[16:18] = struct.pack("!H", len(f) - 14)
        f[34:36] = struct.pack("!H", sport)
        f[38:40] = struct.pack("!H", len(f) - 34)
        ip_checksum(f)
        udp_checksum(f)
        out.append([req[0] + 60 * n, req[1], f, len(f)])
    write("odd-kerberos-tgs-cname.pcap", head, out)


def tcp_checksum(f):
    ihl = (f[14] & 0x0F) * 4
    seg = bytearray(f[14 + ihl :])
    seg[16:18] = b"\0\0"
    data = bytes(f[26:34]) + struct.pack("!BBH", 0, 6, len(seg)) + bytes(seg)
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    f[14 + ihl + 16 : 14 + ihl + 18] = struct.pack("!H", ~s & 0xFFFF)


def smb2_kerberos_split():
    # An SMB2 login with Kerberos cut into 300-byte segments, as a path with a small MSS shows
    # it: the client's SESSION_SETUP carries, in SPNEGO, the AP-REQ the lab client sent the KDC
    # in its TGS-REQ; the server's answer carries the KDC's KRB-ERROR (preauthentication
    # required) of the same capture. Only these Kerberos bytes come from the lab capture; the
    # TCP and SMB2 around them are written here.
    head, recs = read("lab-kerberos-kdc.pcap")
    frames = [bytes(r[2]) for r in recs if len(r[2]) > 42 and r[2][23] == 17]
    tgs = next(f[42:] for f in frames if f[42] == 0x6C)
    err = next(f[42:] for f in frames if f[42] == 0x7E)
    (_, seq), = der_items(tgs)
    (_, items), = der_items(seq)
    padata = dict(der_items(items))[0xA3]
    (_, pas), = der_items(padata)
    # PA-TGS-REQ (type 1): its value is the AP-REQ.
    pa = next(dict(der_items(v)) for _, v in der_items(pas) if dict(der_items(v))[0xA1] == b"\x02\x01\x01")
    (_, ap_req), = der_items(pa[0xA2])
    krb5 = bytes.fromhex("06092a864886f712010202")
    ms_krb5 = bytes.fromhex("06092a864882f712010202")
    spnego = bytes.fromhex("06062b0601050502")
    init = der(0x60, spnego + der(0xA0, der(0x30, der(0xA0, der(0x30, ms_krb5 + krb5)) + der(0xA2, der(0x04, der(0x60, krb5 + b"\x01\x00" + ap_req))))))
    resp = der(0xA1, der(0x30, der(0xA0, b"\x0a\x01\x01") + der(0xA1, ms_krb5) + der(0xA2, der(0x04, der(0x60, krb5 + b"\x03\x00" + err)))))

    def smb2(response, body):
        h = b"\xfeSMB" + struct.pack("<HHIHHIIQII", 64, 1, 0xC0000016 if response else 0, 1, 1, int(response), 0, 2, 0xFEFF, 0)
        h += struct.pack("<Q", 0x1234 if response else 0) + b"\0" * 16
        m = h + body
        return struct.pack("!I", len(m)) + m

    req = smb2(False, struct.pack("<HBBIIHHQ", 25, 0, 1, 1, 0, 88, len(init), 0) + init)
    rep = smb2(True, struct.pack("<HHHH", 9, 0, 72, len(resp)) + resp)
    cli, srv = (bytes([10, 77, 1, 10]), 49800), (bytes([10, 77, 2, 20]), 445)
    macs = {cli: bytes.fromhex("020000000101"), srv: bytes.fromhex("020000000201")}
    seqs = {cli: 1000, srv: 5000}
    out, t = [], [recs[0][0], recs[0][1]]

    def send(src, dst, flags, payload=b""):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src[0], dst[0])
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seqs[src], seqs[dst] if flags & 0x10 else 0, 5 << 4, flags, 64240, 0, 0)
        f = bytearray(macs[dst] + macs[src] + b"\x08\x00" + ip + tcp + payload)
        ip_checksum(f)
        tcp_checksum(f)
        seqs[src] = (seqs[src] + len(payload) + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF
        t[1] += 150
        out.append([t[0] + t[1] // 1_000_000, t[1] % 1_000_000, f, len(f)])

    send(cli, srv, 0x02)
    seqs[srv] = 5000
    send(srv, cli, 0x12)
    send(cli, srv, 0x10)
    for msg, (a, b) in ((req, (cli, srv)), (rep, (srv, cli))):
        for i in range(0, len(msg), 300):
            send(a, b, 0x18, msg[i : i + 300])
        send(b, a, 0x10)
    send(cli, srv, 0x11)
    send(srv, cli, 0x11)
    send(cli, srv, 0x10)
    write("odd-smb2-kerberos-split.pcap", head, out)


def epoch_clock():
    # Times relative to the first frame, as generators and "normalised" exports write them: the
    # first download's SYN is stamped 1970-01-01 00:00:00.000000, which Wireshark reads as "no
    # SYN time", so that connection never gets an RTT.
    head, recs = plain_download()
    t0 = recs[0][0] * 1_000_000 + recs[0][1]
    for r in recs:
        t = r[0] * 1_000_000 + r[1] - t0
        r[0], r[1] = divmod(t, 1_000_000)
    write("odd-tcp-epoch-clock.pcap", head, recs)


def millisecond_clock():
    # A capture clock that ticks in milliseconds: most handshakes have SYN and ACK in the same
    # millisecond (an RTT of 0, which Wireshark reads as "not known yet").
    head, recs = plain_download()
    for r in recs:
        r[1] -= r[1] % 1000
    write("odd-tcp-millisecond-clock.pcap", head, recs)


def through_text2pcap():
    # The snaplen-cut lab download printed by tshark and read back by text2pcap (as captures are
    # passed around in bug reports): every frame is now shorter than its IPv4 length, and the
    # clock ticks 1 µs per frame.
    src = os.path.join(lab, "lab-http-short-loss8.pcap")
    dst = os.path.join(out_dir, "odd-text2pcap-short-loss8.pcap")
    hexdump = subprocess.run(["tshark", "-r", src, "-x"], check=True, capture_output=True).stdout
    subprocess.run(["text2pcap", "-q", "-F", "pcap", "-", dst], input=hexdump, check=True, capture_output=True)
    # text2pcap starts its 1 µs steps at the time it runs: start them at the source's first
    # frame instead, so the recipe gives the same file each time.
    t0 = read("lab-http-short-loss8.pcap")[1][0][:2]
    head, recs = read(os.path.basename(dst), out_dir)
    for n, r in enumerate(recs):
        r[0], r[1] = t0[0] + (t0[1] + n) // 1_000_000, (t0[1] + n) % 1_000_000
    write(os.path.basename(dst), head, recs)


os.makedirs(out_dir, exist_ok=True)
dhcp_hostname_nul()
ipv4_short_frames()
source_route()
bad_option()
malformed_option()
kerberos_tgs_cname()
smb2_kerberos_split()
tcp_header_too_long()
epoch_clock()
millisecond_clock()
through_text2pcap()
