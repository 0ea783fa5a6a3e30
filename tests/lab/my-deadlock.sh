#!/usr/bin/env bash
# my-deadlock.sh SERVER [PORT]: the MariaDB client workload of the lab (make-captures.sh) and
# the error captures on two ports (make-error-captures.sh), against database shop (user app,
# password apppw, InnoDB table items with rows 1 and 2), TLS off: a wrong password (1045), a
# duplicate key (1062) and a genuine deadlock between two concurrent sessions (1213 / 40001).
# HOLD (seconds, 1 unless set): how long each session holds its first lock.
port=${2:-3306}
m() { mariadb --skip-ssl -h "$1" -P "$port" -u app -papppw shop "${@:2}"; }
mariadb --skip-ssl -h "$1" -P "$port" -u app -pnope shop -e 'select 1' >/dev/null 2>&1
m "$1" -e "insert into items values (1, 'first')" >/dev/null 2>&1
m "$1" >/dev/null 2>&1 <<SQL &
begin; update items set name = 'a' where id = 1; select sleep(${HOLD:-1}); update items set name = 'a' where id = 2; commit;
SQL
sleep 0.3
m "$1" >/dev/null 2>&1 <<SQL
begin; update items set name = 'b' where id = 2; select sleep(${HOLD:-1}); update items set name = 'b' where id = 1; commit;
SQL
wait
