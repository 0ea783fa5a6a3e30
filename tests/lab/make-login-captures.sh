#!/usr/bin/env bash
# Regenerates the login captures in tests/data/logins/ with real servers and clients in network
# namespaces (see netns.sh), each protocol twice: on its standard port (NAME-std) and on a
# non-standard one (NAME-alt, the server's port redirected by nftables in its namespace, so the
# wire carries the other port), through 6 % random loss on the router (retransmissions), with
# the clients of tests/lab/login-clients.py: real client programs, right and wrong passwords,
# and a raw client that writes its login line in two pieces. Beside each capture,
# NAME.expected.json: the attempts the clients made and the passwords that must never be
# kept.
#
# Servers: dovecot (POP3 110/1110, IMAP 143/1143), aiosmtpd (SMTP AUTH 587/2525), vsftpd
# (21/2121), nginx with HTTP Basic and a form-login app (80/8088), slapd (389/3389),
# PostgreSQL 15 with `password` and `md5` logins (5432/6543), busybox telnetd (23/2323).
# Needs root, iproute2, nftables, tcpdump, editcap, python3, curl, ldap-utils, and
# dovecot-pop3d dovecot-imapd vsftpd nginx-light slapd postgresql busybox python3-aiosmtpd.
#   tests/lab/make-login-captures.sh              # all
#   tests/lab/make-login-captures.sh pop3 ldap    # only these protocols
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${LAB_OUT:-$here/../data/logins}
. "$here/netns.sh"
P=mwlog
mkdir -p "$out"
work=$(mktemp -d)
chmod 755 "$work"
users=()
cleanup() {
    lab_down $P
    for u in "${users[@]}"; do userdel -r "$u" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
only=("$@")
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
clients="python3 $here/login-clients.py"

# A system account for the services that log in local users (vsftpd, telnetd's login).
system_user() { # name password
    userdel -r "$1" >/dev/null 2>&1 || true
    useradd -m -s /bin/sh "$1"
    echo "$1:$2" | chpasswd
    users+=("$1")
}

# capture NAME PROTO STDPORT ALTPORT SERVER-SETUP
#   The clients of PROTO against the server SERVER-SETUP starts, on the standard port and, in
#   a second capture, the redirected one (lab_pair); then each capture's expected JSON.
capture() {
    local name=$1 proto=$2 std=$3 alt=$4 setup=$5
    lab_pair $P "$work" "$out" "$name" "$std" "$alt" 6 "$setup" "$clients $proto \$1 \$2"
    for variant in std alt; do
        local port=$std
        [ $variant = alt ] && port=$alt
        python3 - "$work/$name-$variant.out" "$out/$name-$variant.expected.json" "$proto" "$port" <<'PY'
import json, sys
attempts = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
PW = {"pop3": ["pop-Wonder1"], "imap": ["imap-Build2"], "smtp": ["smtp-Letme3"], "ftp": ["ftp-Dive4"],
      "http": ["http-Erin5", "form-Frank6"], "ldap": ["ldap-Grace7"], "pg": ["pg-Henry8", "pg-Ivan9md5"],
      "telnet": ["tel-Judy10"]}[sys.argv[3]] + ["Wrong-Guess0"]
json.dump({"generator": "tests/lab/make-login-captures.sh", "port": int(sys.argv[4]), "attempts": attempts,
           "passwords": PW}, open(sys.argv[2], "w"), indent=1)
PY
    done
}

if want pop3 || want imap; then
    lab_dovecot "$work/dv" 'alice:{PLAIN}pop-Wonder1\nbob:{PLAIN}imap-Build2\n'
fi
want pop3 && capture login-pop3 pop3 110 1110 "dovecot -F -c $work/dv/dovecot.conf"
want imap && capture login-imap imap 143 1143 "dovecot -F -c $work/dv/dovecot.conf"

if want smtp; then
    cat > "$work/smtpd.py" <<'PY'
import time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"carol", b"smtp-Letme3")
    return AuthResult(success=ok, handled=False)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Handler(), hostname="10.77.2.20", port=587, authenticator=auth, auth_require_tls=False)
c.start()
time.sleep(60)
PY
    capture login-smtp smtp 587 2525 "python3 $work/smtpd.py"
fi

if want ftp; then
    system_user mwdave ftp-Dive4
    mkdir -p "$work/ftp-empty"
    cat > "$work/vsftpd.conf" <<VSFTPD
listen=YES
listen_ipv6=NO
listen_port=21
listen_address=10.77.2.20
background=NO
anonymous_enable=NO
local_enable=YES
pam_service_name=vsftpd
secure_chroot_dir=$work/ftp-empty
seccomp_sandbox=NO
check_shell=NO
VSFTPD
    capture login-ftp ftp 21 2121 "vsftpd $work/vsftpd.conf"
fi

if want http; then
    mkdir -p "$work/www/private"; echo private > "$work/www/private/index.html"; chmod -R 755 "$work/www"
    printf 'erin:%s\n' "$(openssl passwd -apr1 http-Erin5)" > "$work/htpasswd"; chmod 644 "$work/htpasswd"
    cat > "$work/nginx.conf" <<NGINX
worker_processes 1; pid $work/nginx.pid; error_log $work/nginx-error.log; daemon off;
events { worker_connections 64; }
http { access_log off; server { listen 80; root $work/www;
  location /private/ { auth_basic "branch"; auth_basic_user_file $work/htpasswd; }
  location /app/ { proxy_pass http://127.0.0.1:8090/; } } }
NGINX
    cat > "$work/app.py" <<'PY'
import http.server, json, urllib.parse, cgi
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, ok):
        self.send_response(302 if ok else 401)
        self.send_header("Location", "/app/home"); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        self.answer(q.get("password") == ["form-Frank6"])
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0")); body = self.rfile.read(n)
        t = self.headers.get("Content-Type", "")
        if t.startswith("application/json"):
            ok = json.loads(body or b"{}").get("password") == "form-Frank6"
        elif t.startswith("multipart/"):
            ok = b"form-Frank6" in body
        else:
            ok = urllib.parse.parse_qs(body.decode()).get("password") == ["form-Frank6"]
        self.answer(ok)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 8090), H).serve_forever()
PY
    capture login-http http 80 8088 "python3 $work/app.py & nginx -c $work/nginx.conf"
fi

if want ldap; then
    mkdir -p "$work/ldap/db"
    hash=$(slappasswd -s ldap-Grace7)
    cat > "$work/ldap/slapd.conf" <<SLAPD
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $work/ldap/slapd.pid
database mdb
suffix "dc=branch,dc=lan"
rootdn "cn=admin,dc=branch,dc=lan"
rootpw admin-secret
directory $work/ldap/db
access to * by * read
SLAPD
    cat > "$work/ldap/base.ldif" <<LDIF
dn: dc=branch,dc=lan
objectClass: dcObject
objectClass: organization
o: branch
dc: branch

dn: cn=grace,dc=branch,dc=lan
objectClass: inetOrgPerson
cn: grace
sn: grace
userPassword: $hash
LDIF
    slapadd -f "$work/ldap/slapd.conf" -l "$work/ldap/base.ldif" >/dev/null 2>&1
    capture login-ldap ldap 389 3389 "slapd -d 0 -f $work/ldap/slapd.conf -h ldap://10.77.2.20:389/"
fi

if want pg; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    mkdir -p "$work/pg" "$work/pgsock"; chown postgres: "$work/pg" "$work/pgsock"
    runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
    printf 'host all henry 0.0.0.0/0 password\nhost all ivan 0.0.0.0/0 md5\n' >> "$work/pg/pg_hba.conf"
    runuser -u postgres -- "$pgbin/postgres" -D "$work/pg" -c listen_addresses='' -c unix_socket_directories="$work/pgsock" >/dev/null 2>&1 &
    pg=$!
    sleep 3
    runuser -u postgres -- psql -h "$work/pgsock" -q -c "set password_encryption = 'md5'" \
        -c "create user henry password 'pg-Henry8'" -c "create user ivan password 'pg-Ivan9md5'" >/dev/null
    # (password_encryption = md5 for ivan: an md5 login needs an md5 hash stored.)
    runuser -u postgres -- psql -h "$work/pgsock" -q -c "alter system set password_encryption = 'md5'" >/dev/null
    kill $pg; wait $pg 2>/dev/null || true
    capture login-pg pg 5432 6543 "runuser -u postgres -- $pgbin/postgres -D $work/pg -c listen_addresses=10.77.2.20 -c unix_socket_directories=$work/pgsock -c ssl=off"
fi

if want telnet; then
    system_user mwjudy tel-Judy10
    # inetutils telnetd serves one connection on its standard input, as inetd starts it.
    cat > "$work/inetd.py" <<'PY'
import socket, subprocess
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.2.20", 23))
s.listen(8)
while True:
    c, _ = s.accept()
    subprocess.Popen(["/usr/sbin/telnetd", "-h"], stdin=c, stdout=c, stderr=subprocess.DEVNULL)
    c.close()
PY
    capture login-telnet telnet 23 2323 "python3 $work/inetd.py"
fi
ls -la "$out"
