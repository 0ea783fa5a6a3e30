"""A real SMTP server for the mail tests (aiosmtpd): STARTTLS and AUTH when asked, and every
received message saved twice in OUT: N.eml (raw) and N.json (envelope, headers and parts as
Python's email parser reads them). Prints "ready" once it accepts connections.

    python3 smtpd.py --port 2525 --out DIR [--cert C --key K [--implicit-tls]] [--user U --password P]
"""
import argparse, base64, email, email.policy, json, os, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--cert")
ap.add_argument("--key")
ap.add_argument("--user")
ap.add_argument("--password")
ap.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (port 465 style)")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)


class Handler:
    n = 0

    async def handle_DATA(self, server, session, envelope):
        Handler.n += 1
        base = os.path.join(a.out, "%04d" % Handler.n)
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for p in msg.walk():
            if p.is_multipart():
                continue
            payload = p.get_payload(decode=True) or b""
            parts.append({
                "type": p.get_content_type(),
                "filename": p.get_filename(),
                "text": payload.decode("utf-8", "replace") if p.get_content_maintype() == "text" else None,
                "base64": base64.b64encode(payload).decode() if p.get_content_maintype() != "text" else None,
            })
        doc = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "parts": parts,
            "tls": session.ssl is not None or a.implicit_tls,
            "auth": session.authenticated,
        }
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        with open(base + ".json.tmp", "w") as f:
            json.dump(doc, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK"


def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login.decode() == a.user and data.password.decode() == a.password
    return AuthResult(success=ok, handled=False)


kw = {}
if a.cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    if a.implicit_tls:
        kw.update(ssl_context=ctx)
    else:
        kw.update(tls_context=ctx, require_starttls=True)
if a.user:
    # aiosmtpd only counts STARTTLS as TLS for AUTH; an implicit-TLS connection is TLS anyway.
    kw.update(authenticator=auth, auth_required=True, auth_require_tls=bool(a.cert) and not a.implicit_tls)
c = Controller(Handler(), hostname="127.0.0.1", port=a.port, **kw)
c.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
