"""Re-frames an Ethernet capture as a serial WAN interface shows it, for the lab captures of
the PPP and Cisco HDLC link types (this kernel has no PPP or HDLC device to capture on):

    python3 relink.py IN.pcap OUT.pcap ppp|ppp-acfc-pfc|chdlc

  ppp           link type 9: address 0xff, control 0x03, PPP protocol 0x0021/0x0057
  ppp-acfc-pfc  link type 50 with address/control and protocol compressed (RFC 1661 6.5-6.6)
  chdlc         link type 104: Cisco HDLC, unicast address 0x0f, the ethertype
Frames other than IPv4/IPv6 are left out; times and the packets are kept as they were.
"""
import struct, sys

src, dst, kind = sys.argv[1:4]
b = open(src, "rb").read()
magic = struct.unpack("<I", b[:4])[0]
assert magic in (0xA1B2C3D4, 0xA1B23C4D) and struct.unpack("<I", b[20:24])[0] == 1, "Ethernet pcap expected"
link = {"ppp": 9, "ppp-acfc-pfc": 50, "chdlc": 104}[kind]
out = bytearray(b[:20] + struct.pack("<I", link))
i, n = 24, 0
while i + 16 <= len(b):
    ts, frac, incl, orig = struct.unpack("<IIII", b[i : i + 16])
    f = b[i + 16 : i + 16 + incl]
    i += 16 + incl
    ty = f[12:14]
    if ty not in (b"\x08\x00", b"\x86\xdd"):
        continue
    v4 = ty == b"\x08\x00"
    if kind == "ppp":
        head = b"\xff\x03" + (b"\x00\x21" if v4 else b"\x00\x57")
    elif kind == "ppp-acfc-pfc":
        head = b"\x21" if v4 else b"\x57"
    else:
        head = b"\x0f\x00" + ty
    body = head + f[14:]
    out += struct.pack("<IIII", ts, frac, len(body), orig - 14 + len(head)) + body
    n += 1
open(dst, "wb").write(out)
print(f"{dst}: {n} frames")
