#!/usr/bin/env bash
# pg-deadlock.sh SERVER [PORT]: the PostgreSQL client workload of the lab (make-captures.sh),
# the error captures on two ports (make-error-captures.sh) and the live end-to-end test
# (tests/live_e2e.rs), against database shop (user app, password apppw, table items with rows
# 1 and 2): a wrong password (28P01), a duplicate key (23505), a division by zero (22012), and
# a genuine deadlock between two concurrent sessions (40P01). The clients ask for TLS first
# (sslmode=prefer): a server with ssl=off refuses, and the refusal byte is on the wire.
# HOLD (seconds, 1 unless set): how long each session holds its first lock — longer through
# loss, where a lost SYN delays the second session by a second.
export PGHOST=$1 PGPORT=${2:-5432} PGUSER=app PGDATABASE=shop PGSSLMODE=prefer PGGSSENCMODE=prefer PGPASSWORD=apppw
PGPASSWORD=nope psql -c 'select 1' >/dev/null 2>&1
psql -q -c "insert into items values (1, 'first')" >/dev/null 2>&1
psql -q -c 'select 1/0' >/dev/null 2>&1
psql -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<SQL &
begin; update items set name = 'a' where id = 1; select pg_sleep(${HOLD:-1}); update items set name = 'a' where id = 2; commit;
SQL
sleep 0.3
psql -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<SQL
begin; update items set name = 'b' where id = 2; select pg_sleep(${HOLD:-1}); update items set name = 'b' where id = 1; commit;
SQL
wait
