"""Clients of the lab's login captures (tests/lab/make-login-captures.sh): real client libraries
and programs log in to real servers, right and wrong, and a raw-socket client writes its login
line in two pieces (TCP_NODELAY, a pause between them), the way a slow client or a small MSS
cuts it. Each run prints what it attempted as JSON lines: {"source", "user", "outcome"}.

    python3 login-clients.py PROTOCOL HOST PORT
"""
import base64, ftplib, imaplib, json, poplib, smtplib, socket, subprocess, sys, time, urllib.request

proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
# The lab's accounts: one per protocol, so that a leak names its source.
PW = {
    "pop3": ("alice", "pop-Wonder1"),
    "imap": ("bob", "imap-Build2"),
    "smtp": ("carol", "smtp-Letme3"),
    "ftp": ("mwdave", "ftp-Dive4"),
    "http": ("erin", "http-Erin5"),
    "form": ("frank", "form-Frank6"),
    "ldap": ("grace", "ldap-Grace7"),
    "pg": ("henry", "pg-Henry8"),
    "pgmd5": ("ivan", "pg-Ivan9md5"),
    "telnet": ("mwjudy", "tel-Judy10"),
}
WRONG = "Wrong-Guess0"


def said(source, user, outcome):
    print(json.dumps({"source": source, "user": user, "outcome": outcome}), flush=True)


def attempt(f):
    try:
        f()
    except Exception as e:  # a refused login raises: the attempt still happened
        print("# %s" % e, file=sys.stderr)


def pieces(lines, cut_line, cut_at, banner=True, wait=0.4):
    """A raw client: reads the banner, sends each line, the one at `cut_line` in two writes."""
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if banner:
        s.recv(4096)
    for i, line in enumerate(lines):
        if i == cut_line:
            s.sendall(line[:cut_at])
            time.sleep(0.3)
            s.sendall(line[cut_at:])
        else:
            s.sendall(line)
        time.sleep(wait)
        try:
            s.recv(4096)
        except socket.timeout:
            pass
    s.close()


def b64(s):
    return base64.b64encode(s.encode()).decode()


if proto == "pop3":
    u, p = PW["pop3"]
    def good():
        c = poplib.POP3(host, port, timeout=5); c.user(u); c.pass_(p); c.quit()
    def bad():
        c = poplib.POP3(host, port, timeout=5); c.user(u); c.pass_(WRONG); c.quit()
    attempt(good); said("pop3", u, "success")
    attempt(bad); said("pop3", u, "failure")
    # PASS cut inside the password, then AUTH PLAIN cut inside its base64.
    pieces([b"USER %s\r\n" % u.encode(), b"PASS %s\r\n" % p.encode(), b"QUIT\r\n"], 1, 8)
    said("pop3", u, "success")
    pieces([b"AUTH PLAIN %s\r\n" % b64("\0%s\0%s" % (u, p)).encode(), b"QUIT\r\n"], 0, 15)
    said("pop3", u, "success")
elif proto == "imap":
    u, p = PW["imap"]
    def good():
        c = imaplib.IMAP4(host, port); c.login(u, p); c.logout()
    def bad():
        c = imaplib.IMAP4(host, port); c.login(u, WRONG); c.logout()
    def plain():
        c = imaplib.IMAP4(host, port); c.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (u, p)).encode()); c.logout()
    attempt(good); said("imap", u, "success")
    attempt(bad); said("imap", u, "failure")
    attempt(plain); said("imap", u, "success")
    # LOGIN cut inside the password (a quoted string).
    pieces([b'a1 LOGIN %s "%s"\r\n' % (u.encode(), p.encode()), b"a2 LOGOUT\r\n"], 0, 16)
    said("imap", u, "success")
elif proto == "smtp":
    u, p = PW["smtp"]
    def login(pw, mech):
        s = smtplib.SMTP(host, port, timeout=5); s.ehlo(); s.user, s.password = u, pw
        s.auth(mech, getattr(s, "auth_" + mech.lower())); s.quit()
    attempt(lambda: login(p, "LOGIN")); said("smtp", u, "success")
    attempt(lambda: login(WRONG, "PLAIN")); said("smtp", u, "failure")
    attempt(lambda: login(p, "PLAIN")); said("smtp", u, "success")
    # AUTH LOGIN whose password line is cut in two.
    pieces([b"EHLO ws1\r\n", b"AUTH LOGIN\r\n", b64(u).encode() + b"\r\n", b64(p).encode() + b"\r\n", b"QUIT\r\n"], 3, 6)
    said("smtp", u, "success")
elif proto == "ftp":
    u, p = PW["ftp"]
    def good():
        c = ftplib.FTP(); c.connect(host, port, timeout=5); c.login(u, p); c.quit()
    def bad():
        c = ftplib.FTP(); c.connect(host, port, timeout=5); c.login(u, WRONG); c.quit()
    attempt(good); said("ftp", u, "success")
    attempt(bad); said("ftp", u, "failure")
    pieces([b"USER %s\r\n" % u.encode(), b"PASS %s\r\n" % p.encode(), b"QUIT\r\n"], 1, 5, wait=1.0)
    said("ftp", u, "success")
elif proto == "http":
    # HTTP Basic through nginx (curl), and a request whose Authorization value is cut 4 bytes in.
    u, p = PW["http"]
    for pw, outcome in ((p, "success"), (WRONG, "failure")):
        subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-u", "%s:%s" % (u, pw),
                        "http://%s:%d/private/index.html" % (host, port)])
        said("http-basic", u, outcome)
    req = b"GET /private/index.html HTTP/1.1\r\nHost: intranet\r\nAuthorization: Basic %s\r\nConnection: close\r\n\r\n" % b64("%s:%s" % (u, p)).encode()
    at = req.index(b"Basic ") + 6 + 4
    pieces([req], 0, at, banner=False)
    said("http-basic", u, "success")
    # Form logins to the app behind nginx: urlencoded (curl), urlencoded cut inside the
    # password, multipart (curl -F), JSON; a password in a query string.
    fu, fp = PW["form"]
    subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "--data-urlencode", "username=" + fu,
                    "--data-urlencode", "password=" + fp, "http://%s:%d/app/login" % (host, port)])
    body = b"username=%s&password=%s&remember=on" % (fu.encode(), fp.encode())
    req = b"POST /app/login HTTP/1.1\r\nHost: intranet\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    pieces([req], 0, req.index(b"password=") + 12, banner=False)
    subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-F", "username=" + fu, "-F", "pwd=" + fp,
                    "http://%s:%d/app/login" % (host, port)])
    subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-H", "Content-Type: application/json",
                    "-d", json.dumps({"user": fu, "password": fp}), "http://%s:%d/app/api/login" % (host, port)])
    subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null",
                    "http://%s:%d/app/login?user=%s&password=%s" % (host, port, fu, fp)])
elif proto == "ldap":
    u, p = PW["ldap"]
    dn = "cn=%s,dc=branch,dc=lan" % u
    for pw, outcome in ((p, "success"), (WRONG, "failure")):
        subprocess.run(["ldapwhoami", "-x", "-H", "ldap://%s:%d" % (host, port), "-D", dn, "-w", pw],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        said("ldap", dn, outcome)
    # A simple bind written in two pieces, cut inside the password.
    pw = p.encode()
    name = dn.encode()
    op = b"\x02\x01\x03\x04" + bytes([len(name)]) + name + b"\x80" + bytes([len(pw)]) + pw
    msg = b"\x02\x01\x01\x60" + bytes([len(op)]) + op
    bind = b"\x30" + bytes([len(msg)]) + msg
    unbind = b"\x30\x05\x02\x01\x02\x42\x00"
    pieces([bind, unbind], 0, len(bind) - 5, banner=False)
    said("ldap", dn, "success")
elif proto == "pg":
    for key, outcome_pw in (("pg", None), ("pgmd5", None)):
        u, p = PW[key]
        for pw, outcome in ((p, "success"), (WRONG, "failure")):
            subprocess.run(["psql", "-h", host, "-p", str(port), "-U", u, "-d", "postgres", "-c", "select 1"],
                           env={"PGPASSWORD": pw, "PGSSLMODE": "disable", "PATH": "/usr/bin:/bin"},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            said("postgresql", u, outcome)
elif proto == "telnet":
    import telnetlib
    u, p = PW["telnet"]
    for pw, outcome in ((p, "success"), (WRONG, "failure")):
        t = telnetlib.Telnet(host, port, timeout=10)
        t.read_until(b"login: ", timeout=10)
        # Typed one character at a time, as a terminal does.
        for ch in (u + "\r\n").encode():
            t.write(bytes([ch]))
            time.sleep(0.02)
        t.read_until(b"assword: ", timeout=10)
        for ch in (pw + "\r\n").encode():
            t.write(bytes([ch]))
            time.sleep(0.02)
        # A shell prompt, or (after login's delay) the refusal.
        i, _, _ = t.expect([br"\$ ", b"incorrect"], timeout=10)
        if i == 0:
            t.write(b"exit\r\n")
        time.sleep(0.5)
        t.close()
        said("telnet", u, outcome)
else:
    sys.exit("unknown protocol " + proto)
