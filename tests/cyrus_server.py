"""A real calendar system that processes iMIP by itself: Debian's Cyrus IMAP, on loopback ports.

Cyrus (packages cyrus-imapd, cyrus-caldav, sasl2-bin; .ci/run installs them) delivers
mail over LMTP, keeps calendars it serves over CalDAV, and its Sieve extension
``vnd.cyrus.imip`` (``processimip``) files an incoming invitation into the recipient's
calendar, updates it on a newer one and removes it on METHOD:CANCEL, with nobody
clicking anything. Each test gets its own configuration, storage and password
database in a fresh directory; the server runs as the ``cyrus`` user the package
creates, so the directory is handed to that user (the tests run as root, as CI does).
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from icalendar import Calendar

from .smtp_server import free_port

BIN = Path("/usr/lib/cyrus/bin")
DOMAIN = "example.test"
SIEVE = b'require ["vnd.cyrus.imip"];\r\nprocessimip :deletecanceled;\r\nkeep;\r\n'


def _wait_port(port: int, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise AssertionError(f"Cyrus did not listen on {port} within {limit} s")


class CyrusServer:
    def __init__(self, users: list[str]) -> None:
        assert (BIN / "master").exists(), "Cyrus IMAP is required (apt-get install cyrus-imapd " \
            "cyrus-caldav sasl2-bin; .ci/run does)"
        self.root = Path(tempfile.mkdtemp(prefix="klash-cyrus-"))
        self.users = users
        self.passwords = {u: f"pw-{u}-7311" for u in ["admin", *users]}
        self.lmtp, self.http, self.imap, self.sieve = (free_port() for _ in range(4))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        root, conf = self.root, self.root / "imapd.conf"
        for sub in ("conf", "spool", "sieve"):
            (root / sub).mkdir()
        conf.write_text(f"""configdirectory: {root}/conf
partition-default: {root}/spool
sievedir: {root}/sieve
servername: {DOMAIN}
admins: admin
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
httpmodules: caldav
caldav_allowscheduling: on
syslog_prefix: klash-cyrus
""")
        (root / "cyrus.conf").write_text(f"""START {{
  recover cmd="ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  lmtp cmd="lmtpd -C {conf} -a" listen="127.0.0.1:{self.lmtp}" prefork=0
  http cmd="httpd -C {conf}" listen="127.0.0.1:{self.http}" prefork=0
  imap cmd="imapd -C {conf}" listen="127.0.0.1:{self.imap}" prefork=0
  sieve cmd="timsieved -C {conf}" listen="127.0.0.1:{self.sieve}" prefork=0
}}
EVENTS {{
}}
DAEMON {{
}}
""")
        for user, password in self.passwords.items():
            subprocess.run(["saslpasswd2", "-p", "-f", str(root / "sasldb2"), "-u", DOMAIN, "-c", user],
                           input=password.encode(), check=True, timeout=30)
        subprocess.run(["chown", "-R", "cyrus:mail", str(root)], check=True, timeout=30)
        root.chmod(0o755)
        self.proc = subprocess.Popen(
            [str(BIN / "master"), "-C", str(conf), "-M", str(root / "cyrus.conf"),
             "-p", str(root / "master.pid"), "-D"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in (self.lmtp, self.http, self.imap, self.sieve):
            _wait_port(port)
        imap = imaplib.IMAP4("127.0.0.1", self.imap)
        imap.login("admin", self.passwords["admin"])
        for user in self.users:
            status, answer = imap.create(f"user/{user}")
            assert status == "OK", answer
        imap.logout()
        for user in self.users:
            self._install_sieve(user)
            # the first login provisions the calendar home (Default calendar, scheduling
            # Inbox), as a mentor's client would
            self._request(user, "PROPFIND", f"/dav/calendars/user/{user}/", None)

    def _request(self, user: str, method: str, path: str, body: bytes | None) -> str:
        token = base64.b64encode(f"{user}:{self.passwords[user]}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http}{path}", data=body, method=method,
            headers={"Depth": "1", "Content-Type": "application/xml", "Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.read().decode()

    def _install_sieve(self, user: str) -> None:
        """Upload and activate the iMIP script over ManageSieve (RFC 5804), as a client would."""
        with socket.create_connection(("127.0.0.1", self.sieve), timeout=10) as sock:
            stream = sock.makefile("rwb")

            def answer() -> bytes:
                while True:
                    line = stream.readline()
                    if not line or line.startswith((b"OK", b"NO", b"BYE")):
                        return line

            assert answer().startswith(b"OK")
            token = base64.b64encode(f"\0{user}\0{self.passwords[user]}".encode()).decode()
            for command in (f'AUTHENTICATE "PLAIN" "{token}"\r\n'.encode(),
                            b'PUTSCRIPT "imip" {%d+}\r\n' % len(SIEVE) + SIEVE + b"\r\n",
                            b'SETACTIVE "imip"\r\n'):
                stream.write(command)
                stream.flush()
                reply = answer()
                assert reply.startswith(b"OK"), reply
            stream.write(b"LOGOUT\r\n")
            stream.flush()

    def deliver(self, raw: bytes, sender: str, recipient: str) -> None:
        """What the organisation's mail server does with a message for a local mailbox."""
        with smtplib.LMTP("127.0.0.1", self.lmtp) as lmtp:
            refused = lmtp.sendmail(sender, [recipient], raw)
        assert not refused, refused

    def events(self, user: str) -> dict[str, Calendar]:
        """UID -> the VEVENT filed in the user's default calendar, read over CalDAV."""
        query = (b'<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" '
                 b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop>'
                 b'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/>'
                 b"</C:comp-filter></C:filter></C:calendar-query>")
        body = self._request(user, "REPORT", f"/dav/calendars/user/{user}/Default/", query)
        found = {}
        for data in re.findall(r"<C:calendar-data[^>]*>(.*?)</C:calendar-data>", body, re.S):
            text = data.replace("<![CDATA[", "").replace("]]>", "").replace("&#13;", "\r")
            for event in Calendar.from_ical(text).walk("VEVENT"):
                found[str(event["UID"])] = event
        return found

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
