#!/usr/bin/env bash
# Regenerates the tunnelled lab captures in tests/data/tunnel/: HTTP downloads between the lab
# namespaces (netns.sh) through 3 % loss, delivered to the capture point inside a tunnel, as a
# remote mirror session or an overlay delivers them.
#   lab-tunnel-vxlan        a VXLAN overlay (Linux vxlan devices, VNI 100) between cli and srv
#   lab-tunnel-erspan2/3    an ERSPAN type II / III mirror session of the server port
#   lab-tunnel-gretap       a GRE transparent-Ethernet-bridging mirror session (0x6558)
#   lab-tunnel-gre-ip       IP packets in plain GRE with a key (0x0800)
#   lab-wan-pppoe[-vlan|-qinq]  the server port's IP packets in a PPPoE session (untagged, in
#                           VLAN 10, in QinQ 100/10), as a WAN port carries them
#   lab-wan-mpls            the same under two MPLS labels (100, 200)
#   lab-wan-pppoe-pfc       PPPoE with the compressed 1-byte PPP protocol field (0x21)
#   lab-tunnel-ipip         IPv4 in IPv4 (protocol 4), as a Linux ipip device sends it
#   lab-tunnel-sit          IPv6 in IPv4 (protocol 41, 6in4), as a sit device sends it
#   lab-tunnel-4in6         IPv4 in IPv6 (protocol 4), as an ip6tnl device in ip4ip6 mode
#   lab-tunnel-6in6         IPv6 in IPv6 (protocol 41), as an ip6tnl device in ip6ip6 mode
#   lab-tunnel-geneve       Ethernet in Geneve (UDP 6081, VNI 0x123)
#   lab-tunnel-gtp          IP in GTP-U (UDP 2152, TEID 0x1234, sequence numbers), as a mobile
#                           backhaul mirror shows it
#   lab-tunnel-gre-wccp     IP redirected by WCCP v2 in GRE (0x883e, 4-byte redirect header)
#   lab-tunnel-gre-pptp     PPTP's enhanced GRE (version 1, 0x880b) carrying PPP
#   lab-tunnel-gre-mpls     MPLS in GRE (0x8847)
#   lab-tunnel-gre-eoip     MikroTik EoIP (GRE version 1, 0x6400)
#   lab-tunnel-gre-aruba    802.11 QoS data frames in Aruba's GRE (0x8210), as an access point
#                           sends its clients' traffic to the controller
#   lab-wan-etag / -vntag   frames with an E-Tag (802.1BR) or a VN-Tag from a port extender
#   lab-wan-fabricpath      frames inside Cisco FabricPath's outer header
#   lab-wan-cmd             frames with Cisco's inline metadata (TrustSec SGT)
#   lab-tunnel-gre-nsh      Ethernet behind a Network Service Header in GRE (0x894f)
#   lab-serial-ppp          the server port's packets as a PPP serial link shows them (link type
#                           9, address and control present)
#   lab-serial-ppp-acfc     the same, link type 50, address/control and protocol compressed
#   lab-serial-chdlc        the same as Cisco HDLC (link type 104)
# This kernel has vxlan but no gre/erspan/ipip/sit/ip6tnl/geneve devices, no GTP, no PPP and no
# MPLS forwarding, so the mirror
# sessions are made by a small sender (mirror.py) that sniffs the server port with AF_PACKET
# and sends each frame to the collector in the tunnel's headers over a raw IP socket (protocol
# 47), as a switch's mirror session would, and the WAN encapsulations by the same sender
# wrapping each IP packet and sending it on a veth; tcpdump captures what arrives. tshark (tests/tshark_tunnels.rs) is the oracle.
# Needs root, iproute2, nftables, tcpdump, editcap, curl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${TUNNEL_OUT:-$here/../data/tunnel}
. "$here/netns.sh"
P=mwtun
mkdir -p "$out"
work=$(mktemp -d)
trap 'lab_down $P; rm -rf "$work"' EXIT
mkdir -p "$work/www"
head -c 200000 /dev/urandom > "$work/www/big.bin"

downloads='for i in 1 2 3; do curl -s -m 30 -o /dev/null "http://$1:8080/big.bin"; done'

# record NS IFACE NAME SERVER [FILTER]: tcpdump on IFACE in NS while the client downloads from
# SERVER, then the lab goes down and the capture is saved as NAME.
record() {
    local ns=$1 iface=$2 name=$3 server=$4 filter=${5:-}
    ip netns exec "$ns" tcpdump -q -s 1600 -U -i "$iface" -w "$work/$name.pcap" $filter 2>/dev/null &
    local td=$!
    sleep 1
    ip netns exec $P-cli bash -c "$downloads" -- "$server" || true
    sleep 1
    kill "$td"; wait "$td" 2>/dev/null || true
    lab_down $P
    lab_save "$work" "$name" "$out"
}

capture_mirror() { # name kind
    local name=$1 kind=$2
    lab_up $P
    lab_loss $P 3
    ip netns exec $P-srv python3 -m http.server 8080 --bind 10.77.2.20 --directory "$work/www" >/dev/null 2>&1 &
    # Room for a full frame in the tunnel on the way to the collector, as on a mirror uplink.
    ip -n $P-rtr link set $P-r0 mtu 9000; ip -n $P-cli link set $P-c0 mtu 9000
    # The mirror session: the server port's frames, to a collector on the client side.
    ip netns exec $P-rtr python3 "$here/mirror.py" "$P-r1" 10.77.1.10 "$kind" >/dev/null &
    sleep 1
    record $P-cli "$P-c0" "$name" 10.77.2.20 "ip proto 47"
}

# capture_tunnel NAME KIND END SERVER FILTER: the server port's packets re-encapsulated by the
# router towards END (the client's address, the tunnel's far end) while the client downloads
# from SERVER (IPv4 or [IPv6]); tcpdump on the client keeps the tunnel's packets only.
capture_tunnel() {
    local name=$1 kind=$2 end=$3 server=$4 filter=$5
    lab_up $P
    lab_loss $P 3
    local bind=${server#[}; bind=${bind%]}
    ip netns exec $P-srv python3 -m http.server 8080 --bind "$bind" --directory "$work/www" >/dev/null 2>&1 &
    ip -n $P-rtr link set $P-r0 mtu 9000; ip -n $P-cli link set $P-c0 mtu 9000
    ip netns exec $P-rtr python3 "$here/mirror.py" "$P-r1" "$end" "$kind" >/dev/null &
    sleep 1
    record $P-cli "$P-c0" "$name" "$server" "$filter"
}

capture_wan() { # name kind
    local name=$1 kind=$2
    lab_up $P
    lab_loss $P 3
    ip netns exec $P-srv python3 -m http.server 8080 --bind 10.77.2.20 --directory "$work/www" >/dev/null 2>&1 &
    # The WAN link: a veth pair in the router, silent but for what the sender puts on it.
    ip -n $P-rtr link add $P-w0 type veth peer name $P-w1
    for i in $P-w0 $P-w1; do
        ip netns exec $P-rtr sysctl -qw net.ipv6.conf.$i.disable_ipv6=1
        ip -n $P-rtr link set $i mtu 9000 up
    done
    ip netns exec $P-rtr python3 "$here/mirror.py" "$P-r1" "$P-w0" "$kind" >/dev/null &
    sleep 1
    record $P-rtr "$P-w1" "$name" 10.77.2.20
}

capture_vxlan() {
    local name=lab-tunnel-vxlan
    lab_up $P
    lab_loss $P 3
    ip -n $P-cli link add vx0 type vxlan id 100 local 10.77.1.10 remote 10.77.2.20 dstport 4789
    ip -n $P-srv link add vx0 type vxlan id 100 local 10.77.2.20 remote 10.77.1.10 dstport 4789
    ip -n $P-cli link set vx0 address 02:00:00:00:05:01
    ip -n $P-srv link set vx0 address 02:00:00:00:05:02
    ip -n $P-cli addr add 10.89.5.1/24 dev vx0; ip -n $P-srv addr add 10.89.5.2/24 dev vx0
    ip -n $P-cli link set vx0 up mtu 1400; ip -n $P-srv link set vx0 up mtu 1400
    ip netns exec $P-srv python3 -m http.server 8080 --bind 10.89.5.2 --directory "$work/www" >/dev/null 2>&1 &
    sleep 1
    record $P-rtr "$P-r0" "$name" 10.89.5.2
}

# capture_serial NAME KIND: the server port's frames, re-framed by relink.py as a serial WAN
# interface (PPP or Cisco HDLC) captures them: no such device exists in this kernel.
capture_serial() {
    local name=$1 kind=$2
    lab_up $P
    lab_loss $P 3
    ip netns exec $P-srv python3 -m http.server 8080 --bind 10.77.2.20 --directory "$work/www" >/dev/null 2>&1 &
    ip netns exec $P-rtr tcpdump -q -s 1600 -U -i $P-r1 -w "$work/$name-eth.pcap" 2>/dev/null &
    local td=$!
    sleep 1
    ip netns exec $P-cli bash -c "$downloads" -- 10.77.2.20 || true
    sleep 1
    kill "$td"; wait "$td" 2>/dev/null || true
    lab_down $P
    editcap -F pcap "$work/$name-eth.pcap" "$work/$name-eth-classic.pcap"
    python3 "$here/relink.py" "$work/$name-eth-classic.pcap" "$out/$name.pcap" "$kind"
}

# ONLY=GLOB (e.g. ONLY='lab-wan-*') makes only the captures whose names match.
want() { [ -z "${ONLY:-}" ] || [[ $1 == $ONLY ]]; }
want lab-tunnel-vxlan && capture_vxlan
for k in erspan2 erspan3 gretap gre-ip; do want lab-tunnel-$k && capture_mirror lab-tunnel-$k $k; done
for k in pppoe pppoe-vlan pppoe-qinq pppoe-pfc mpls etag vntag fabricpath cmd; do want lab-wan-$k && capture_wan lab-wan-$k $k; done
for k in gre-wccp gre-pptp gre-mpls gre-eoip gre-aruba gre-nsh; do want lab-tunnel-$k && capture_mirror lab-tunnel-$k $k; done
want lab-serial-ppp && capture_serial lab-serial-ppp ppp
want lab-serial-ppp-acfc && capture_serial lab-serial-ppp-acfc ppp-acfc-pfc
want lab-serial-chdlc && capture_serial lab-serial-chdlc chdlc
want lab-tunnel-ipip && capture_tunnel lab-tunnel-ipip ipip 10.77.1.10 10.77.2.20 "ip proto 4"
want lab-tunnel-sit && capture_tunnel lab-tunnel-sit sit 10.77.1.10 "[fd77:2::20]" "ip proto 41"
want lab-tunnel-4in6 && capture_tunnel lab-tunnel-4in6 4in6 fd77:1::10 10.77.2.20 "ip6 proto 4"
want lab-tunnel-6in6 && capture_tunnel lab-tunnel-6in6 6in6 fd77:1::10 "[fd77:2::20]" "ip6 proto 41"
want lab-tunnel-geneve && capture_tunnel lab-tunnel-geneve geneve 10.77.1.10 10.77.2.20 "udp port 6081"
want lab-tunnel-gtp && capture_tunnel lab-tunnel-gtp gtp 10.77.1.10 10.77.2.20 "udp port 2152"
ls -la "$out"
