#!/usr/bin/env bash
# Regenerates the normal/failure capture pairs in tests/data/diff/: the same client workload run
# twice between network namespaces (see netns.sh), once working and once broken, by real
# servers and clients. tests/diff_pairs.rs checks `mirrorwatch diff` on them against the golden
# reports written here (`*.diff.json`), which the recipe makes with the freshly built binary.
# Needs root, iproute2, nftables, tcpdump, editcap, curl, python3, dnsmasq-base, bind9-dnsutils,
# postgresql.
#   tests/lab/make-diff-pairs.sh              # all pairs
#   tests/lab/make-diff-pairs.sh web dns      # only these
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${DIFF_OUT:-$root/tests/data/diff}
. "$here/netns.sh"
P=mwdiff
mkdir -p "$out"
work=$(mktemp -d)
trap 'lab_down $P; rm -rf "$work"' EXIT
mkdir -p "$work/www"
head -c 400000 /dev/urandom > "$work/www/big.bin"
echo "hello" > "$work/www/index.html"
printf 'address=/intranet.branch.lan/10.77.2.20\naddress=/files.branch.lan/10.77.2.20\nlocal=/branch.lan/\n' > "$work/dns-ok.conf"
printf 'address=/files.branch.lan/10.77.2.20\nlocal=/branch.lan/\n' > "$work/dns-moved.conf"
only=("$@")
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }

# capture NAME LOSS SETUP WORKLOAD: servers by SETUP (in bash, $1 = server address), then the
# client WORKLOAD, captured on the router's client-side interface.
capture() {
    local name=$1 loss=$2 setup=$3 workload=$4
    lab_up $P
    [ "$loss" != 0 ] && lab_loss $P "$loss"
    ip netns exec $P-srv bash -c "$setup" -- 10.77.2.20 >/dev/null 2>&1 &
    sleep "${SETUP_WAIT:-2}"
    ip netns exec $P-rtr tcpdump -q -s 1600 -U -i "$P-r0" -w "$work/$name.pcap" 2>/dev/null &
    local td=$!
    sleep 1
    ip netns exec $P-cli bash -c "$workload" -- 10.77.2.20 || true
    sleep 1
    kill "$td"; wait "$td" 2>/dev/null || true
    lab_down $P
    lab_save "$work" "$name" "$out"
}

web='python3 -m http.server 8080 --bind 10.77.2.20 --directory '"$work"'/www'
fetch='for i in 1 2 3; do curl -s -m 5 -o /dev/null "http://$1:8080/index.html"; sleep 0.2; done'
if want web; then
    # The web server is down: the same fetches meet a RST.
    capture diff-web-normal 0 "$web" "$fetch"
    # A second normal run: it must give no outcome finding.
    capture diff-web-normal2 0 "$web" "$fetch"
    capture diff-web-failure 0 'true' "$fetch"
fi
dns_run() { echo "dnsmasq --no-daemon --conf-file=$work/$1 --listen-address=10.77.2.20 --bind-interfaces --no-resolv --no-hosts --pid-file=$work/dnsmasq-$1.pid"; }
lookups='for n in intranet files intranet; do dig +tries=1 +time=2 @$1 $n.branch.lan >/dev/null; sleep 0.2; done'
if want dns; then
    # The name was removed (NXDOMAIN), or the resolver is not running (ICMP port unreachable,
    # no answer).
    capture diff-dns-normal 0 "$(dns_run dns-ok.conf)" "$lookups"
    capture diff-dns-normal2 0 "$(dns_run dns-ok.conf)" "$lookups"
    capture diff-dns-nxdomain 0 "$(dns_run dns-moved.conf)" "$lookups"
    capture diff-dns-dead 0 'true' "$lookups"
fi
if want loss; then
    # The same downloads through a link losing 5 % of the packets.
    capture diff-loss-normal 0 "$web" 'for i in 1 2 3; do curl -s -m 30 -o /dev/null "http://$1:8080/big.bin"; done'
    capture diff-loss-failure 5 "$web" 'for i in 1 2 3; do curl -s -m 30 -o /dev/null "http://$1:8080/big.bin"; done'
fi
if want tls; then
    # The server was reconfigured to TLS 1.3 only; the client still speaks at most TLS 1.2: the
    # ClientHello is answered by an alert (70, protocol_version) instead of a ServerHello.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=intranet.branch.lan \
        -keyout "$work/tls.key" -out "$work/tls.crt" >/dev/null 2>&1
    tls_server() { echo "openssl s_server -accept 8443 -cert $work/tls.crt -key $work/tls.key -www -quiet $1"; }
    hello='for i in 1 2; do curl -sk -m 5 -o /dev/null --tls-max 1.2 --resolve intranet.branch.lan:8443:$1 https://intranet.branch.lan:8443/; sleep 0.2; done'
    capture diff-tls-normal 0 "$(tls_server '')" "$hello"
    capture diff-tls-failure 0 "$(tls_server -tls1_3)" "$hello"
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if want db; then
    chmod 755 "$work"
    # One database per capture: initdb, a user app/apppw, a table with two rows.
    pg_setup() { # dir
        mkdir -p "$work/$1" "$work/$1sock"; chown postgres: "$work/$1" "$work/$1sock"
        runuser -u postgres -- "$pgbin/initdb" -D "$work/$1" -A trust -U postgres >/dev/null
        printf 'host all all 0.0.0.0/0 scram-sha-256\n' >> "$work/$1/pg_hba.conf"
        echo "runuser -u postgres -- $pgbin/postgres -D $work/$1 -c listen_addresses=10.77.2.20 -c unix_socket_directories=$work/$1sock -c deadlock_timeout=200ms -c ssl=off &
sleep 3
runuser -u postgres -- psql -h $work/$1sock -q -c \"create user app password 'apppw'\" -c 'create database shop owner app'
PGPASSWORD=apppw runuser -u postgres -- psql -h $work/$1sock -q -U app -d shop -c \"create table items (id int primary key, name text); insert into items values (1, 'x'), (2, 'y')\"
wait"
    }
    # Two transactions updating rows 1 and 2 in opposite order: one after the other, then
    # overlapping (a deadlock, 40P01).
    tx() { # name delay
        printf "PGPASSWORD=apppw psql -h \$1 -U app -d shop -q >/dev/null 2>&1 <<SQL &
begin; update items set name = 'a' where id = 1; select pg_sleep(0.5); update items set name = 'a' where id = 2; commit;
SQL
sleep %s
PGPASSWORD=apppw psql -h \$1 -U app -d shop -q >/dev/null 2>&1 <<SQL
begin; update items set name = 'b' where id = 2; select pg_sleep(0.5); update items set name = 'b' where id = 1; commit;
SQL
wait\n" "$1"
    }
    export SETUP_WAIT=8
    capture diff-db-deadlock-normal 0 "$(pg_setup pg1)" "$(tx 1.5)"
    capture diff-db-deadlock-failure 0 "$(pg_setup pg2)" "$(tx 0.2)"
    # The application's password was rotated on the client only (28P01).
    login='for i in 1 2; do PGPASSWORD=$PW psql -h $1 -U app -d shop -q -c "select 1" >/dev/null 2>&1; done'
    capture diff-db-login-normal 0 "$(pg_setup pg3)" "PW=apppw; $login"
    capture diff-db-login-normal2 0 "$(pg_setup pg5)" "PW=apppw; $login"
    capture diff-db-login-failure 0 "$(pg_setup pg4)" "PW=oldpw; $login"
fi
# Golden reports, from the binary of this tree.
cargo build --quiet --bin mirrorwatch --manifest-path "$root/Cargo.toml"
mw=$root/target/debug/mirrorwatch
for n in "$out"/diff-*-normal.pcap; do
    case=$(basename "$n" -normal.pcap)
    for f in "$out/$case"-*.pcap; do
        [ "$f" = "$n" ] && continue
        # Run in the directory: the report names the files as given, never this machine's paths.
        (cd "$out" && "$mw" diff "$(basename "$n")" "$(basename "$f")" --format json > "$(basename "${f%.pcap}").diff.json")
        echo "== $(basename "$f")"; (cd "$out" && "$mw" diff "$(basename "$n")" "$(basename "$f")" | head -12)
    done
done
