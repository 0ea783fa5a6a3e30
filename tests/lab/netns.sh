# Shared helpers for the lab recipes: a three-host line  cli <-> rtr <-> srv  built from network
# namespaces and veth pairs. rtr forwards and can drop packets at random with nftables
# (`numgen random`), standing in for a bad cable or a flaky media converter; tc netem is not
# available here. Only addresses inside these namespaces are used.
#
# Source this file; call lab_up PREFIX, then lab_down PREFIX (also on EXIT).

lab_ns() { echo "$1-$2"; }

lab_up() {
    local p=$1
    lab_down "$p" 2>/dev/null || true
    for h in cli rtr srv; do ip netns add "$p-$h"; ip -n "$p-$h" link set lo up; done
    ip link add "$p-c0" type veth peer name "$p-r0"
    ip link add "$p-s0" type veth peer name "$p-r1"
    ip link set "$p-c0" netns "$p-cli"; ip link set "$p-r0" netns "$p-rtr"
    ip link set "$p-s0" netns "$p-srv"; ip link set "$p-r1" netns "$p-rtr"
    # Fixed MACs so captures are reproducible.
    ip -n "$p-cli" link set "$p-c0" address 02:00:00:00:01:01
    ip -n "$p-rtr" link set "$p-r0" address 02:00:00:00:01:fe
    ip -n "$p-rtr" link set "$p-r1" address 02:00:00:00:02:fe
    ip -n "$p-srv" link set "$p-s0" address 02:00:00:00:02:01
    ip -n "$p-cli" addr add 10.77.1.10/24 dev "$p-c0"
    ip -n "$p-cli" addr add fd77:1::10/64 dev "$p-c0" nodad
    ip -n "$p-rtr" addr add 10.77.1.1/24 dev "$p-r0"
    ip -n "$p-rtr" addr add fd77:1::1/64 dev "$p-r0" nodad
    ip -n "$p-rtr" addr add 10.77.2.1/24 dev "$p-r1"
    ip -n "$p-rtr" addr add fd77:2::1/64 dev "$p-r1" nodad
    ip -n "$p-srv" addr add 10.77.2.20/24 dev "$p-s0"
    ip -n "$p-srv" addr add fd77:2::20/64 dev "$p-s0" nodad
    for h in cli rtr srv; do
        for i in $(ip -n "$p-$h" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$'); do
            ip -n "$p-$h" link set "$i" up
            # Offloads off: the capture should show wire-sized segments, as a mirror port does.
            ip netns exec "$p-$h" ethtool -K "$i" tso off gso off gro off >/dev/null 2>&1 || true
        done
    done
    ip -n "$p-cli" route add default via 10.77.1.1
    ip -n "$p-cli" -6 route add default via fd77:1::1
    ip -n "$p-srv" route add default via 10.77.2.1
    ip -n "$p-srv" -6 route add default via fd77:2::1
    ip netns exec "$p-rtr" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

# lab_loss PREFIX PERCENT: drop PERCENT % (decimals allowed, e.g. 1.5) of forwarded packets in
# both directions.
lab_loss() {
    local p=$1 permille
    permille=$(awk -v p="$2" 'BEGIN { printf "%d", p * 10 }')
    ip netns exec "$p-rtr" nft -f - <<NFT
table inet lab {
  chain loss {
    type filter hook forward priority 0; policy accept;
    numgen random mod 1000 < $permille counter drop
  }
}
NFT
}

lab_down() {
    local p=$1
    local h
    for h in cli rtr srv; do
        { ip netns pids "$p-$h" 2>/dev/null | xargs -r kill 2>/dev/null; } || true
    done
    sleep 0.2
    for h in cli rtr srv; do ip netns del "$p-$h" 2>/dev/null || true; done
    return 0
}

# lab_save WORK NAME OUT: the capture WORK/NAME.pcap as classic pcap in OUT (tcpdump may write
# pcapng-capable variants; frames unchanged), and how many frames it has.
lab_save() {
    editcap -F pcap "$1/$2.pcap" "$3/$2.pcap"
    echo "$2: $(capinfos -c -M "$3/$2.pcap" | awk '/Number of packets/ {print $4}') packets"
}

# lab_dovecot DIR USERS: a dovecot configuration in DIR/dovecot.conf serving POP3 and IMAP
# in plaintext (no TLS, PLAIN and LOGIN allowed) to the users of USERS (printf format lines
# "name:{PLAIN}password"), with its state, log and maildirs under DIR. Start it with
# `dovecot -F -c DIR/dovecot.conf`.
lab_dovecot() {
    local d=$1
    mkdir -p "$d/run" "$d/state" "$d/mail"; chmod 755 "$(dirname "$d")" "$d"; chmod 777 "$d/mail"
    printf "$2" > "$d/users"
    cat > "$d/dovecot.conf" <<DOVECOT
protocols = pop3 imap
listen = *
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:$d/mail/%u
passdb {
  driver = passwd-file
  args = $d/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$d/mail/%u
}
DOVECOT
}

# lab_pair PREFIX WORK OUT NAME STDPORT ALTPORT LOSS SERVER-SETUP CLIENT: the same exchange
# captured twice, as OUT/NAME-std.pcap with the server on STDPORT and as OUT/NAME-alt.pcap with
# the client sent to ALTPORT, which nftables in the server's namespace redirects to STDPORT (so
# the wire carries ALTPORT and the server needs no other configuration). Each time: a fresh
# line with LOSS % random loss on the router, SERVER-SETUP run by bash in the server's namespace
# (it starts the servers in the background; SETTLE seconds, 3 unless set, are left for them),
# then CLIENT run by bash in the client's namespace with the server's address and the port as
# $1 $2, its output in WORK/NAME-VARIANT.out; tcpdump on the router's server side, snaplen 1600.
lab_pair() {
    local p=$1 work=$2 out=$3 name=$4 std=$5 alt=$6 loss=$7 setup=$8 client=$9
    local variant port td
    for variant in std alt; do
        port=$std
        [ $variant = alt ] && port=$alt
        lab_up "$p"
        [ "$loss" != 0 ] && lab_loss "$p" "$loss"
        ip netns exec "$p-srv" nft -f - <<NFT
table ip redir {
  chain pre {
    type nat hook prerouting priority -100; policy accept;
    tcp dport $alt redirect to :$std
  }
}
NFT
        ip netns exec "$p-srv" bash -c "$setup" &
        sleep "${SETTLE:-3}"
        ip netns exec "$p-rtr" tcpdump -q -s 1600 -U -i "$p-r1" -w "$work/$name-$variant.pcap" 2>/dev/null &
        td=$!
        sleep 1
        ip netns exec "$p-cli" bash -c "$client" -- 10.77.2.20 "$port" > "$work/$name-$variant.out" || true
        sleep 2
        kill "$td"; wait "$td" 2>/dev/null || true
        lab_down "$p"
        lab_save "$work" "$name-$variant" "$out"
    done
}
