#!/usr/bin/env bash
# Regenerates the lab captures in tests/data/lab/ with real servers and clients in network
# namespaces (see netns.sh), and their expected TCP analysis as tshark 4.0 reports it.
# Needs root, iproute2, nftables, tcpdump, python3, curl, tshark, editcap, and for the servers:
# nginx-light, dnsmasq-base, postgresql, mariadb-server, mariadb-client, bind9-dnsutils, openssl, dovecot-pop3d, dovecot-imapd, krb5-kdc,
# krb5-admin-server, krb5-user, busybox (Debian) and aiosmtpd, pyftpdlib (PyPI).
#   tests/lab/make-captures.sh            # all captures
#   tests/lab/make-captures.sh lab-dns-dnsmasq   # only the named ones
# The captures are headers-only (snaplen 128) to stay small; the sequence analysis only needs
# the headers, and tcp.len comes from the IP length as on a real capture box.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${LAB_OUT:-$here/../data/lab}
. "$here/netns.sh"
P=mwlab
mkdir -p "$out"
work=$(mktemp -d)
trap 'lab_down $P; rm -rf "$work"' EXIT

# A web root with files of several sizes.
mkdir -p "$work/www"
head -c 300000 /dev/urandom > "$work/www/big.bin"
head -c 20000 /dev/urandom > "$work/www/small.bin"
echo "hello" > "$work/www/index.html"

want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
only=("$@")

capture() { # name pct ipv6(0/1) script [interface]
    local name=$1 pct=$2 v6=$3 clients=$4 iface=${5:-$P-r0}
    want "$name" || return 0
    lab_up $P
    [ "$pct" != 0 ] && lab_loss $P "$pct"
    ip netns exec $P-srv python3 -m http.server 8080 --bind :: --directory "$work/www" >/dev/null 2>&1 &
    # A resolver for the branch's names (answers NXDOMAIN for everything else, never forwards).
    printf 'address=/intranet.branch.lan/10.77.2.20\naddress=/files.branch.lan/10.77.2.20\nlocal=/branch.lan/\n' > "$work/dnsmasq.conf"
    ip netns exec $P-srv dnsmasq --no-daemon --conf-file="$work/dnsmasq.conf" --listen-address=10.77.2.20 \
        --bind-interfaces --no-resolv --no-hosts --pid-file="$work/dnsmasq.pid" >/dev/null 2>&1 &
    sleep 1
    ip netns exec $P-rtr tcpdump -q -s "${SNAPLEN:-128}" -U -i "$iface" -w "$work/$name.pcap" 2>/dev/null &
    local td=$!
    sleep 1
    local host=10.77.2.20
    [ "$v6" = 1 ] && host='[fd77:2::20]'
    ip netns exec $P-cli bash -c "$clients" -- "$host" || true
    sleep 1
    kill "$td"; wait "$td" 2>/dev/null || true
    lab_down $P
    # Classic pcap (tcpdump may write pcapng-capable variants); frames unchanged.
    editcap -F pcap "$work/$name.pcap" "$out/$name.pcap"
    echo "$name: $(capinfos -c -M "$out/$name.pcap" | awk '/Number of packets/ {print $4}') packets"
}

# Bulk downloads through 2 % loss: RTO and fast retransmissions, dup ACKs, out-of-order.
capture lab-http-bulk-loss2 2 0 'for i in $(seq 1 6); do curl -s -m 20 -o /dev/null "http://$1:8080/big.bin"; done'
# Many short connections through 8 % loss: SYN and SYN/ACK retransmissions, lost FINs.
capture lab-http-short-loss8 8 0 'for i in $(seq 1 40); do curl -s -m 10 -o /dev/null "http://$1:8080/index.html"; done'
# IPv6 bulk through 3 % loss with parallel clients.
capture lab-http-ipv6-loss3 3 1 'for i in 1 2 3; do curl -s -m 20 -o /dev/null "http://$1:8080/big.bin" & done; wait; curl -s -m 20 -o /dev/null "http://$1:8080/small.bin"'
# DNS through dnsmasq: names that exist and names that do not (NXDOMAIN), over UDP and TCP.
capture lab-dns-dnsmasq 0 0 'for n in intranet files printer nas intranet; do dig +tries=1 +time=2 @10.77.2.20 $n.branch.lan >/dev/null; dig +tcp +tries=1 +time=2 @10.77.2.20 $n.branch.lan AAAA >/dev/null; done; curl -s -m 5 -o /dev/null "http://$1:8080/index.html"'
# `tcpdump -i any` on the router: Linux cooked v2 link type, every forwarded frame seen twice
# (in and out), IPv4 and IPv6, 3 % loss.
capture lab-any-sll2-loss3 3 0 'for i in 1 2; do curl -s -m 20 -o /dev/null "http://$1:8080/small.bin"; curl -s -m 20 -o /dev/null "http://[fd77:2::20]:8080/small.bin"; done' any
# Two users behind a NAT: the router masquerades the client subnet; captured on the server
# side, both Basic-auth logins (and a failed one) come from the router's one MAC and address.
if want lab-nat-two-users-basic; then
    printf 'alice:%s\nbob:%s\n' "$(openssl passwd -apr1 wonderland)" "$(openssl passwd -apr1 builder)" > "$work/htpasswd"
    chmod 644 "$work/htpasswd"; chmod 755 "$work" "$work/www"
    cat > "$work/nginx-basic.conf" <<NGINX
worker_processes 1; pid $work/nginx-basic.pid; error_log $work/nginx-error.log; daemon off;
events { worker_connections 64; }
http { access_log off; server { listen 8081; root $work/www;
  location / { auth_basic "branch"; auth_basic_user_file $work/htpasswd; } } }
NGINX
fi
SNAPLEN=600 capture lab-nat-two-users-basic 0 0 '
    ip netns exec '"$P"'-rtr nft add table ip nat
    ip netns exec '"$P"'-rtr nft "add chain ip nat post { type nat hook postrouting priority 100; }"
    ip netns exec '"$P"'-rtr nft add rule ip nat post oifname '"$P"'-r1 masquerade
    ip netns exec '"$P"'-srv nginx -c '"$work"'/nginx-basic.conf &
    sleep 1
    curl -s -m 5 -o /dev/null -u alice:wonderland "http://$1:8081/index.html"
    curl -s -m 5 -o /dev/null -u bob:builder "http://$1:8081/index.html"
    curl -s -m 5 -o /dev/null -u carol:guess "http://$1:8081/index.html"
    curl -s -m 5 -o /dev/null -u alice:wonderland "http://$1:8081/small.bin"' $P-r1
# Mail logins against dovecot (POP3 and IMAP, plaintext allowed): USER/PASS, LOGIN,
# AUTHENTICATE PLAIN and AUTH PLAIN, right and wrong passwords, from python's poplib/imaplib
# and curl.
if want lab-mail-dovecot; then
    lab_dovecot "$work/dv" 'alice:{PLAIN}wonderland\nbob:{PLAIN}builder\n'
    cat > "$work/mail-clients.py" <<'PY'
import base64, imaplib, poplib, sys
host = sys.argv[1]
def attempt(f):
    try:
        f()
    except Exception:
        pass
def pop_user(u, p):
    c = poplib.POP3(host); c.user(u); c.pass_(p); c.quit()
def imap_login(u, p):
    c = imaplib.IMAP4(host); c.login(u, p); c.logout()
def imap_plain(u, p):
    c = imaplib.IMAP4(host); c.authenticate("PLAIN", lambda _: b"\0" + u.encode() + b"\0" + p.encode()); c.logout()
attempt(lambda: pop_user("alice", "wonderland"))
attempt(lambda: pop_user("alice", "mistyped"))
attempt(lambda: imap_login("bob", "builder"))
attempt(lambda: imap_login("carol", "guess"))
attempt(lambda: imap_plain("alice", "wonderland"))
PY
fi
SNAPLEN=600 capture lab-mail-dovecot 0 0 '
    ip netns exec '"$P"'-srv dovecot -F -c '"$work"'/dv/dovecot.conf &
    sleep 2
    python3 '"$work"'/mail-clients.py "$1"
    curl -s -m 5 -o /dev/null -u bob:builder "pop3://$1/"
    curl -s -m 5 -o /dev/null -u bob:nobuilder "pop3://$1/"'
# Kerberos against an MIT KDC: kinit right, wrong (PREAUTH_FAILED) and unknown
# (C_PRINCIPAL_UNKNOWN) over UDP, a service ticket (TGS), the same over TCP, and a machine
# account (WS02$) from a keytab.
if want lab-kerberos-kdc; then
    mkdir -p "$work/krb/db"; touch "$work/krb/kadm5.acl"
    for proto in udp tcp; do
        limit=$([ $proto = tcp ] && echo 1 || echo 1465)
        printf '[libdefaults]\n default_realm = BRANCH.LAN\n dns_lookup_kdc = false\n rdns = false\n udp_preference_limit = %s\n[realms]\n BRANCH.LAN = {\n  kdc = 10.77.2.20\n }\n' "$limit" > "$work/krb/krb5-$proto.conf"
    done
    printf '[kdcdefaults]\n kdc_ports = 88\n kdc_tcp_ports = 88\n[realms]\n BRANCH.LAN = {\n  database_name = %s\n  key_stash_file = %s\n  acl_file = %s\n }\n' \
        "$work/krb/db/principal" "$work/krb/db/stash" "$work/krb/kadm5.acl" > "$work/krb/kdc.conf"
    export KRB5_KDC_PROFILE="$work/krb/kdc.conf"
    KRB5_CONFIG="$work/krb/krb5-udp.conf" kdb5_util -r BRANCH.LAN -P masterpw create -s >/dev/null 2>&1
    for q in "addprinc +requires_preauth -pw alicepw alice" "addprinc +requires_preauth -pw bobpw bob" \
             "addprinc -randkey host/ws01.branch.lan" "addprinc -randkey WS02\$" "ktadd -k $work/krb/ws02.keytab WS02\$"; do
        KRB5_CONFIG="$work/krb/krb5-udp.conf" kadmin.local -r BRANCH.LAN -q "$q" >/dev/null 2>&1
    done
fi
SNAPLEN=1600 capture lab-kerberos-kdc 0 0 '
    ip netns exec '"$P"'-srv env KRB5_CONFIG='"$work"'/krb/krb5-udp.conf KRB5_KDC_PROFILE='"$work"'/krb/kdc.conf krb5kdc -n -r BRANCH.LAN &
    sleep 1
    k='"$work"'/krb
    export KRB5CCNAME=$k/cc
    echo alicepw | KRB5_CONFIG=$k/krb5-udp.conf kinit alice >/dev/null
    KRB5_CONFIG=$k/krb5-udp.conf kvno host/ws01.branch.lan >/dev/null
    echo wrong | KRB5_CONFIG=$k/krb5-udp.conf kinit bob >/dev/null 2>&1
    echo x | KRB5_CONFIG=$k/krb5-udp.conf kinit nobody >/dev/null 2>&1
    echo bobpw | KRB5_CONFIG=$k/krb5-tcp.conf kinit bob >/dev/null
    KRB5_CONFIG=$k/krb5-tcp.conf kinit -k -t $k/ws02.keytab "WS02\$" >/dev/null'
# FTP (pyftpdlib) and SMTP AUTH (aiosmtpd) logins, right and wrong, from curl and smtplib.
if want lab-ftp-smtp-logins; then
    mkdir -p "$work/ftp"; echo hi > "$work/ftp/hello.txt"
    cat > "$work/smtpd.py" <<'PY'
import time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"carol", b"letmein")
    return AuthResult(success=ok, handled=False)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Handler(), hostname="10.77.2.20", port=587, authenticator=auth, auth_require_tls=False)
c.start()
time.sleep(20)
PY
    cat > "$work/smtp-clients.py" <<'PY'
import smtplib, sys
def attempt(user, pw, mech):
    try:
        s = smtplib.SMTP(sys.argv[1], 587, timeout=5)
        s.ehlo()
        s.user, s.password = user, pw
        s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")))
        s.quit()
    except Exception:
        pass
attempt("carol", "letmein", "LOGIN")
attempt("carol", "wrongpw", "PLAIN")
attempt("dave", "letmein", "PLAIN")
PY
fi
SNAPLEN=600 capture lab-ftp-smtp-logins 0 0 '
    ip netns exec '"$P"'-srv python3 -m pyftpdlib -p 21 -u alice -P wonderland -d '"$work"'/ftp >/dev/null 2>&1 &
    ip netns exec '"$P"'-srv python3 '"$work"'/smtpd.py >/dev/null 2>&1 &
    sleep 2
    curl -s -m 5 -o /dev/null "ftp://alice:wonderland@$1/hello.txt"
    curl -s -m 5 -o /dev/null "ftp://alice:wrongpass@$1/hello.txt"
    curl -s -m 5 -o /dev/null "ftp://$1/hello.txt"
    python3 '"$work"'/smtp-clients.py "$1"'
# DHCP from dnsmasq on the router to busybox udhcpc sending a host name.
SNAPLEN=600 capture lab-dhcp-dnsmasq 0 0 '
    ip netns exec '"$P"'-rtr dnsmasq --no-daemon --port=0 --interface='"$P"'-r0 --bind-interfaces \
        --dhcp-range=10.77.1.100,10.77.1.150,12h --dhcp-leasefile='"$work"'/leases --no-resolv >/dev/null 2>&1 &
    sleep 1
    busybox udhcpc -i '"$P"'-c0 -x hostname:ws-alice -n -q -s /bin/true >/dev/null 2>&1'
# PostgreSQL 15: a wrong password (28P01), a duplicate key (23505), a division by zero
# (22012) and a genuine deadlock between two concurrent sessions (40P01). The server has TLS
# off; the clients ask for it first (sslmode=prefer), so the refusal byte is in the capture.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if want lab-pgsql-errors; then
    chmod 755 "$work"; mkdir -p "$work/pg" "$work/pgsock"; chown postgres: "$work/pg" "$work/pgsock"
    runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
    printf 'host all all 0.0.0.0/0 scram-sha-256\n' >> "$work/pg/pg_hba.conf"
fi
SNAPLEN=1600 capture lab-pgsql-errors 0 0 '
    ip netns exec '"$P"'-srv runuser -u postgres -- '"$pgbin"'/postgres -D '"$work"'/pg -c listen_addresses=10.77.2.20 \
        -c unix_socket_directories='"$work"'/pgsock -c deadlock_timeout=200ms -c ssl=off >/dev/null 2>&1 &
    sleep 3
    ip netns exec '"$P"'-srv runuser -u postgres -- psql -h '"$work"'/pgsock -q -c "create user app password '"'"'apppw'"'"'" -c "create database shop owner app" >/dev/null
    ip netns exec '"$P"'-srv runuser -u postgres -- psql -h '"$work"'/pgsock -q -U app -d shop -c "create table items (id int primary key, name text); insert into items values (1, '"'"'x'"'"'), (2, '"'"'y'"'"')" >/dev/null
    bash '"$here"'/pg-deadlock.sh "$1"'
# A flood: one client pipelines 10 000 failing queries (22012 division by zero) on one
# connection to the real PostgreSQL; the answers arrive packed into full-size segments, errors
# split across them. The alert tests expect one mail and a digest, not 10 000 mails.
if want lab-pgsql-flood; then
    pgbin=${pgbin:?PostgreSQL not installed}
    chmod 755 "$work"; mkdir -p "$work/pgf" "$work/pgfsock"; chown postgres: "$work/pgf" "$work/pgfsock"
    runuser -u postgres -- "$pgbin/initdb" -D "$work/pgf" -A trust -U postgres >/dev/null
    printf 'host all flood 0.0.0.0/0 trust\n' >> "$work/pgf/pg_hba.conf"
    cat > "$work/pg-flood.py" <<'PY'
import socket, struct, sys
s = socket.create_connection((sys.argv[1], 5432))
def msg(t, body): return t + struct.pack("!I", len(body) + 4) + body
params = b"user\0flood\0database\0postgres\0\0"
s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
def read_until(count):
    buf, seen = b"", 0
    while seen < count:
        data = s.recv(65536)
        if not data: break
        buf += data
        while len(buf) >= 5:
            n = struct.unpack("!I", buf[1:5])[0]
            if len(buf) < n + 1: break
            if buf[0:1] == b"Z": seen += 1
            buf = buf[n + 1:]
read_until(1)
s.sendall(b"".join(msg(b"Q", b"select 1/0\0") for _ in range(10000)))
read_until(10000)
s.sendall(msg(b"X", b""))
s.close()
PY
fi
SNAPLEN=1600 capture lab-pgsql-flood 0 0 '
    ip netns exec '"$P"'-srv runuser -u postgres -- '"$pgbin"'/postgres -D '"$work"'/pgf -c listen_addresses=10.77.2.20 \
        -c unix_socket_directories='"$work"'/pgfsock -c ssl=off >/dev/null 2>&1 &
    sleep 3
    ip netns exec '"$P"'-srv runuser -u postgres -- psql -h '"$work"'/pgfsock -q -c "create user flood" >/dev/null
    python3 '"$work"'/pg-flood.py "$1"'
# Hostile names: HTTP Basic logins whose user names carry CR/LF and HTML (no colon: it ends the
# user name in Basic auth), from
# behind one MAC (so the shared-MAC alert mail must show them), and a 500 whose reason phrase is
# HTML. The server is a few lines of python accepting any credentials.
if want lab-hostile-names; then
    cat > "$work/anyauth.py" <<'PY'
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path == "/fail":
            self.send_response(500, "<b>boom</b><script>alert(1)</script>")
        else:
            self.send_response(200 if self.headers.get("Authorization") else 401)
        self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("10.77.2.20", 8083), H).serve_forever()
PY
fi
SNAPLEN=1600 capture lab-hostile-names 0 0 '
    ip netns exec '"$P"'-srv python3 '"$work"'/anyauth.py &
    sleep 1
    curl -s -m 5 -o /dev/null -u alice:wonderland "http://$1:8083/"
    curl -s -m 5 -o /dev/null -u "$(printf "mallory\r\nBcc victim@example.com\r\n<script>alert(1)</script>")":pw "http://$1:8083/"
    curl -s -m 5 -o /dev/null -u "<img src=x onerror=alert(1)>:pw" "http://$1:8083/"
    curl -s -m 5 -o /dev/null "http://$1:8083/fail"'
# MariaDB: a wrong password (1045), a duplicate key (1062) and a genuine deadlock between two
# concurrent sessions (1213 / 40001), TLS off.
if want lab-mariadb-errors; then
    chmod 755 "$work"; mkdir -p "$work/my"; chown mysql: "$work/my"
    mariadb-install-db --no-defaults --datadir="$work/my" --user=mysql --auth-root-authentication-method=normal >/dev/null 2>&1
fi
SNAPLEN=1600 capture lab-mariadb-errors 0 0 '
    ip netns exec '"$P"'-srv mariadbd --no-defaults --datadir='"$work"'/my --user=mysql --bind-address=10.77.2.20 \
        --socket='"$work"'/my/my.sock --skip-log-bin --innodb-lock-wait-timeout=10 >/dev/null 2>&1 &
    sleep 4
    ip netns exec '"$P"'-srv mariadb --no-defaults -S '"$work"'/my/my.sock -u root -e "create database shop; create user app@'"'"'%'"'"' identified by '"'"'apppw'"'"'; grant all on shop.* to app@'"'"'%'"'"'; create table shop.items (id int primary key, name text) engine=innodb; insert into shop.items values (1, '"'"'x'"'"'), (2, '"'"'y'"'"')"
    bash '"$here"'/my-deadlock.sh "$1"'
# nginx answering 500, 502 (upstream down), 503 and a 500 with a 12 kB error page whose body
# spans several segments (reported at the frame that completes it), plus HEAD and 200s.
if want lab-http-nginx-5xx; then
    chmod 755 "$work" "$work/www"
    head -c 12000 /dev/zero | tr '\0' 'e' > "$work/www/big500.html"
    cat > "$work/nginx-5xx.conf" <<NGINX
worker_processes 1; pid $work/nginx-5xx.pid; error_log $work/nginx-5xx-error.log; daemon off;
events { worker_connections 64; }
http { access_log off; server { listen 8082; root $work/www;
  location = /boom { return 500; }
  location = /busy { return 503; }
  location = /app { proxy_pass http://127.0.0.1:9; }
  location = /bigerr { error_page 500 /big500.html; return 500; }
  location = /big500.html { internal; } } }
NGINX
fi
SNAPLEN=1600 capture lab-http-nginx-5xx 0 0 '
    ip netns exec '"$P"'-srv nginx -c '"$work"'/nginx-5xx.conf &
    sleep 1
    for u in index.html boom app busy bigerr index.html boom; do curl -s -m 5 -o /dev/null "http://$1:8082/$u"; done
    curl -s -m 5 -I -o /dev/null "http://$1:8082/boom"
    curl -s -m 5 -o /dev/null "http://$1:8082/app" "http://$1:8082/bigerr" "http://$1:8082/index.html"'
# No loss: the baseline must show no retransmissions at all.
capture lab-http-clean 0 0 'for i in $(seq 1 5); do curl -s -m 20 -o /dev/null "http://$1:8080/big.bin"; curl -s -o /dev/null "http://$1:8080/index.html"; done'

# Expected values, from tshark (the oracle), kept beside the captures.
for f in "$out"/*.pcap; do
    want "$(basename "$f" .pcap)" || continue
    python3 - "$f" <<'PY'
import json, subprocess, sys
f = sys.argv[1]
flags = ["retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack",
         "out_of_order", "lost_segment", "zero_window", "ack_lost_segment", "keep_alive", "window_update"]
cmd = ["tshark", "-n", "-r", f, "-Y", "tcp.analysis.flags", "-T", "fields", "-E", "occurrence=f",
       "-e", "frame.number"] + [a for x in flags for a in ("-e", "tcp.analysis." + x)]
rows = [l.split("\t") for l in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()]
frames = {x: [int(r[0]) for r in rows if r[i + 1]] for i, x in enumerate(flags)}
count = int(subprocess.run(["tshark", "-n", "-r", f, "-T", "fields", "-e", "frame.number"],
                           capture_output=True, text=True).stdout.split()[-1])
ver = subprocess.run(["tshark", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
def errors(flt, family, fields, keep=lambda r: True):
    cmd = ["tshark", "-n", "-r", f, "-Y", flt, "-T", "fields", "-E", "occurrence=f", "-e", "frame.number"]
    cmd += [a for x in fields for a in ("-e", x)]
    rows = [l.split("\t") for l in subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()]
    return [{"frame": int(r[0]), "family": family, "code": r[1]} for r in rows if keep(r)]
app = (errors("mysql.error_code", "mysql", ["mysql.error_code"])
       + errors("pgsql.code", "postgresql", ["pgsql.code", "pgsql.severity"], lambda r: r[2] in ("ERROR", "FATAL", "PANIC"))
       + errors("tds.error.number", "tds", ["tds.error.number"])
       + errors("http.response.code >= 500", "http", ["http.response.code"]))
json.dump({"generator": "tests/lab/make-captures.sh", "oracle": ver, "packets": count,
           "tcp_analysis_frames": frames, "app_errors": sorted(app, key=lambda e: e["frame"])},
          open(f[:-5] + ".expected.json", "w"), indent=1)
PY
done
# The flood capture is big and repetitive: kept gzipped (the tests unpack it).
if [ -f "$out/lab-pgsql-flood.pcap" ]; then gzip -9 -f "$out/lab-pgsql-flood.pcap"; fi
ls -la "$out"
