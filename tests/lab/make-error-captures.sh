#!/usr/bin/env bash
# Regenerates the error captures in tests/data/errors/: application errors from real servers,
# each workload captured twice between network namespaces (netns.sh, lab_pair): on the
# server's standard port (NAME-std) and on a non-standard one (NAME-alt, redirected by
# nftables in the server's namespace, so the wire carries the other port), through 3 % random
# loss. Beside each capture, NAME.expected.json: the errors the workload provokes (family and
# code, how many times) and the passwords its clients send (which must never be kept).
#
#   errors-pg     PostgreSQL 15 (5432 / 15432), pg-deadlock.sh: 28P01, 23505, 22012, 40P01
#   errors-mysql  MariaDB (3306 / 13306), my-deadlock.sh: 1045, 1062, 1213
#   errors-http   nginx (80 / 8088): 500, 502 (upstream down), 503, a 500 with a 12 kB body
#
# Needs root, iproute2, nftables, tcpdump, editcap, curl, postgresql, postgresql-client,
# mariadb-server, mariadb-client, nginx-light.
#   tests/lab/make-error-captures.sh            # all
#   tests/lab/make-error-captures.sh pg http    # only these
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${LAB_OUT:-$here/../data/errors}
. "$here/netns.sh"
P=mwerr
mkdir -p "$out"
work=$(mktemp -d)
chmod 755 "$work"
trap 'lab_down $P; rm -rf "$work"' EXIT
only=("$@")
want() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }

# expect NAME STDPORT ALTPORT ERRORS PASSWORDS: the expected JSON of both captures (ERRORS and
# PASSWORDS are JSON).
expect() {
    local variant port
    for variant in std alt; do
        port=$2
        [ $variant = alt ] && port=$3
        printf '{"generator": "tests/lab/make-error-captures.sh", "port": %s,\n "errors": %s,\n "passwords": %s}\n' \
            "$port" "$4" "$5" > "$out/$1-$variant.expected.json"
    done
}

if want pg; then
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    mkdir -p "$work/pg0" "$work/pgsock"; chown postgres: "$work/pg0" "$work/pgsock"
    runuser -u postgres -- "$pgbin/initdb" -D "$work/pg0" -A trust -U postgres >/dev/null
    printf 'host all all 0.0.0.0/0 scram-sha-256\n' >> "$work/pg0/pg_hba.conf"
    runuser -u postgres -- "$pgbin/postgres" -D "$work/pg0" -c listen_addresses='' -c unix_socket_directories="$work/pgsock" >/dev/null 2>&1 &
    pg=$!
    sleep 3
    runuser -u postgres -- psql -h "$work/pgsock" -q -c "create user app password 'apppw'" -c "create database shop owner app" >/dev/null
    runuser -u postgres -- psql -h "$work/pgsock" -q -U app -d shop \
        -c "create table items (id int primary key, name text); insert into items values (1, 'x'), (2, 'y')" >/dev/null
    kill $pg; wait $pg 2>/dev/null || true
    # Each capture starts from a copy of the prepared cluster: the same rows both times.
    SETTLE=4 lab_pair $P "$work" "$out" errors-pg 5432 15432 3 \
        "rm -rf $work/pg; cp -a $work/pg0 $work/pg; exec runuser -u postgres -- $pgbin/postgres -D $work/pg \
            -c listen_addresses=10.77.2.20 -c unix_socket_directories=$work/pgsock -c deadlock_timeout=200ms -c ssl=off >/dev/null 2>&1" \
        "HOLD=3 bash $here/pg-deadlock.sh \$1 \$2"
    expect errors-pg 5432 15432 \
        '{"postgresql 28P01": 1, "postgresql 23505": 1, "postgresql 22012": 1, "postgresql 40P01": 1}' '["apppw", "nope"]'
fi

if want mysql; then
    mkdir -p "$work/my0" "$work/mysock"; chown mysql: "$work/my0" "$work/mysock"
    mariadb-install-db --no-defaults --datadir="$work/my0" --user=mysql --auth-root-authentication-method=normal >/dev/null 2>&1
    mariadbd --no-defaults --datadir="$work/my0" --user=mysql --skip-networking --socket="$work/mysock/my.sock" --skip-log-bin >/dev/null 2>&1 &
    my=$!
    for _ in $(seq 1 30); do [ -S "$work/mysock/my.sock" ] && break; sleep 0.5; done
    mariadb --no-defaults -S "$work/mysock/my.sock" -u root -e "create database shop; create user app@'%' identified by 'apppw';
        grant all on shop.* to app@'%'; create table shop.items (id int primary key, name text) engine=innodb;
        insert into shop.items values (1, 'x'), (2, 'y')"
    kill $my; wait $my 2>/dev/null || true
    SETTLE=6 lab_pair $P "$work" "$out" errors-mysql 3306 13306 3 \
        "rm -rf $work/my; cp -a $work/my0 $work/my; exec mariadbd --no-defaults --datadir=$work/my --user=mysql \
            --bind-address=10.77.2.20 --socket=$work/mysock/my.sock --skip-log-bin --innodb-lock-wait-timeout=10 >/dev/null 2>&1" \
        "HOLD=3 bash $here/my-deadlock.sh \$1 \$2"
    expect errors-mysql 3306 13306 '{"mysql 1045": 1, "mysql 1062": 1, "mysql 1213": 1}' '["apppw", "nope"]'
fi

if want http; then
    mkdir -p "$work/www"; echo hello > "$work/www/index.html"
    head -c 12000 /dev/zero | tr '\0' 'e' > "$work/www/big500.html"; chmod -R 755 "$work/www"
    cat > "$work/nginx.conf" <<NGINX
worker_processes 1; pid $work/nginx.pid; error_log $work/nginx-error.log; daemon off;
events { worker_connections 64; }
http { access_log off; server { listen 80; root $work/www;
  location = /boom { return 500; }
  location = /busy { return 503; }
  location = /app { proxy_pass http://127.0.0.1:9; }
  location = /bigerr { error_page 500 /big500.html; return 500; }
  location = /big500.html { internal; } } }
NGINX
    lab_pair $P "$work" "$out" errors-http 80 8088 3 "exec nginx -c $work/nginx.conf" '
        for u in index.html boom app busy bigerr index.html boom; do curl -s -m 5 -o /dev/null "http://$1:$2/$u"; done
        curl -s -m 5 -I -o /dev/null "http://$1:$2/boom"
        curl -s -m 5 -o /dev/null "http://$1:$2/app" "http://$1:$2/bigerr" "http://$1:$2/index.html"'
    expect errors-http 80 8088 '{"http 500": 5, "http 502": 2, "http 503": 1}' '[]'
fi
ls -la "$out"
