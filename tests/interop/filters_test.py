"""mailroomd's filter chains and Sieve end to end, with real peers: Sieve fileinto/imap4flags/vacation
on the MX (the vacation reply leaves through the queue to Postfix's smtp-sink, which records the
envelope); SPF, DKIM and DMARC on the MX chain against a real DNS server (dnsmasq) and messages
signed by dkimpy (Debian's python3-dkim); DKIM signing on the submission chain, verified by dkimpy;
opendkim as a milter in the submission chain, running and stopped (failure policies).
Skipped when smtp-sink (postfix), dnsmasq, openssl or python3-dkim is missing; the milter case
also when opendkim is."""
import base64
import email
import email.policy
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

import sinklib


def _dkim_module():
    """Debian's python3-dkim; when this interpreter (CMake may have found another) lacks it, the
    test re-executes itself under Debian's python3, which has it. None: not installed."""
    try:
        import dkim as module
        return module
    except ImportError:
        pass
    debian = "/usr/bin/python3"
    here = os.path.realpath(sys.executable)
    if "MAILROOM_DKIM_REEXEC" not in os.environ and os.path.exists(debian) and here != os.path.realpath(debian):
        os.execve(debian, [debian] + sys.argv, dict(os.environ, MAILROOM_DKIM_REEXEC="1"))
    return None


dkim = _dkim_module()
OPENDKIM = shutil.which("opendkim") or ("/usr/sbin/opendkim" if os.path.exists("/usr/sbin/opendkim") else None)
SMTP_SINK = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)
HOSTNAME = "mx.example.test"
DEMO = "demo@example.test"


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1, dumping each transaction (envelope records, then the
    message) to a file of its own."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mailroom-smtp-sink-")
        self.port = sinklib.free_port()
        args = [SMTP_SINK, "-d", self.dir + "/%M.", "127.0.0.1:%d" % self.port, "10"]
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            args[1:1] = ["-u", "nobody"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sinklib.wait_port(self.port, self.proc)

    def transactions(self):
        """[(envelope, message)]: envelope {"from": "<...>", "rcpts": ["<...>"]}, message in CRLF
        lines; only dumps that were complete (unchanged for a moment)."""
        def sizes():
            return {n: os.path.getsize(os.path.join(self.dir, n)) for n in os.listdir(self.dir)}
        before = sizes()
        time.sleep(0.2)
        after = sizes()
        out = []
        for name in sorted(n for n in after if before.get(n) == after[n] and after[n] > 0):
            with open(os.path.join(self.dir, name), "rb") as f:
                lines = f.read().split(b"\n")
            env = {"from": None, "rcpts": []}
            i = 0
            while i < len(lines) and lines[i].startswith(b"X-"):
                key, _, value = lines[i].partition(b": ")
                if key == b"X-Mail-Args":
                    env["from"] = value.decode().split()[0]
                elif key == b"X-Rcpt-Args":
                    env["rcpts"].append(value.decode().split()[0])
                i += 1
            out.append((env, b"\r\n".join(lines[i:])))
        return out

    def wait(self, count, secs=20):
        return sinklib.wait_for(lambda: len(self.transactions()) >= count and self.transactions(), secs,
                                "%d message(s) at smtp-sink" % count)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def setUpModule():
    if SMTP_SINK is None:
        print("SKIP: smtp-sink (postfix) is not installed")
        sys.exit(77)
    sinklib.require_tool("dnsmasq")
    sinklib.require_tool("openssl")
    if dkim is None:
        print("SKIP: python3-dkim is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    exe = os.path.join(sinklib.BIN_DIR, "mailroomd")
    if not os.access(exe, os.X_OK):
        raise RuntimeError("no mailroomd at %s (set MAILROOM_BIN_DIR)" % exe)


def rsa_key(path):
    """An RSA key in PEM at path (openssl genrsa); returns the DKIM key record for it."""
    subprocess.run(["openssl", "genrsa", "-out", path, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def txt_option(name, text):
    """A dnsmasq txt-record option; long texts split into character-strings of at most 200 octets."""
    parts = [text[i:i + 200] for i in range(0, len(text), 200)]
    return "txt-record=%s,%s" % (name, ",".join('"%s"' % p for p in parts))


def parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def unfold(value):
    return re.sub(r"\r?\n[ \t]+", " ", str(value))


class MailroomdCase(unittest.TestCase):
    """Each test starts its own mailroomd (self.start) and everything is stopped afterwards."""

    def setUp(self):
        self.daemons = []

    def tearDown(self):
        for m in self.daemons:
            m.log.seek(0)
            log = m.log.read()
            code = m.close()
            self.assertEqual(code, 0, "mailroomd exit status; its log:\n" + log)

    def start(self, extra, kinds=("mx",)):
        m = sinklib.Mailroomd(kinds, extra_config=extra, hostname=HOSTNAME)
        self.daemons.append(m)
        return m

    def log_of(self, m):
        m.log.flush()
        with open(m.dir + "/log") as f:
            return f.read()

    def folder(self, m, name=""):
        """The (file name, content) of every message in a Maildir++ folder (new/ and cur/)."""
        base = os.path.join(m.dir, "mail", "demo", "Maildir", "." + name if name else "")
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                with open(os.path.join(d, n), "rb") as f:
                    out.append((sub + "/" + n, f.read()))
        return out

    def wait_folder(self, m, count, name="", secs=15):
        return sinklib.wait_for(lambda: len(self.folder(m, name)) >= count and self.folder(m, name), secs,
                                "%d message(s) in %s" % (count, name or "INBOX"))

    def submit(self, m, to, body, sender=DEMO):
        with smtplib.SMTP("127.0.0.1", m.ports["submission"], timeout=20) as s:
            s.starttls(context=sinklib.insecure_tls())
            s.login(m.USER, m.PASS)
            s.sendmail(sender, to, body)


# --- 1. Sieve --------------------------------------------------------------------------------------

SCRIPT = r'''require ["fileinto", "vacation", "imap4flags"];
if header :contains "list-id" "announce" {
  fileinto :flags "\\Flagged" "Lists";
  stop;
}
vacation :days 1 :subject "Away" "I am away";
'''

BROKEN_SCRIPT = '''require ["fileinto"];
if header :contains "subject" "x" {
  filein "Junk";
}
'''


def plain(sender, subject, msgid, extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"
            "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n%s\r\nhello %s\r\n" % (
                sender, DEMO, subject, msgid, extra, subject)).encode()


class SieveTest(MailroomdCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink()

    @classmethod
    def tearDownClass(cls):
        cls.sink.close()

    def sieve_daemon(self, script):
        m = self.start('[[transport]]\ndomain = "remote.test"\nto = "smtp:127.0.0.1:%d"\n' % self.sink.port)
        home = os.path.join(m.dir, "mail", "demo")
        with open(os.path.join(home, ".dovecot.sieve"), "w") as f:
            f.write(script)
        # The Lists folder as Dovecot makes it: Maildir++ ".Lists" with a maildirfolder marker.
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(home, "Maildir", sub), exist_ok=True)
            os.makedirs(os.path.join(home, "Maildir", ".Lists", sub), exist_ok=True)
        open(os.path.join(home, "Maildir", ".Lists", "maildirfolder"), "w").close()
        return m

    def send(self, m, sender, body):
        with smtplib.SMTP("127.0.0.1", m.ports["mx"], timeout=10) as s:
            self.assertEqual(s.sendmail(sender, [DEMO], body), {})

    def replies_to(self, rcpt):
        return [(e, msg) for e, msg in self.sink.transactions() if e["rcpts"] == ["<%s>" % rcpt]]

    def test_fileinto_flags_and_vacation_once(self):
        m = self.sieve_daemon(SCRIPT)
        self.send(m, "owner@lists.remote.test",
                  plain("owner@lists.remote.test", "news", "l1@lists.remote.test",
                        "List-Id: Announcements <announce.lists.remote.test>\r\n"))
        lists = self.wait_folder(m, 1, "Lists")
        self.assertEqual(len(lists), 1)
        name, content = lists[0]
        # \Flagged: filed with its flags, so in cur/ with F in the info part.
        self.assertTrue(name.startswith("cur/"), name)
        self.assertRegex(name, r":2,[A-Z]*F[A-Z]*$")
        self.assertIn(b"hello news", content)
        self.assertIn(b"Delivered-To: " + DEMO.encode(), content)

        self.send(m, "sender@remote.test", plain("sender@remote.test", "first", "m1@remote.test"))
        inbox = self.wait_folder(m, 1)
        self.assertIn(b"hello first", inbox[0][1])
        self.assertEqual(len(self.folder(m, "Lists")), 1)
        env, reply = sinklib.wait_for(lambda: self.replies_to("sender@remote.test"), 20, "the vacation reply")[0]
        self.assertEqual(env["from"], "<>")  # RFC 3834 / RFC 5230: from the null sender
        r = parsed(reply)
        self.assertIn(DEMO, r["From"])
        self.assertIn("sender@remote.test", r["To"])
        self.assertEqual(r["Subject"], "Away")
        self.assertEqual(r["Auto-Submitted"], "auto-replied")
        self.assertEqual(r["In-Reply-To"], "<m1@remote.test>")
        self.assertIn("I am away", r.get_payload())

        # The second message from the same sender: kept, but no second reply (:days 1).
        self.send(m, "sender@remote.test", plain("sender@remote.test", "second", "m2@remote.test"))
        self.wait_folder(m, 2)
        # Another sender gets its reply: once that is through the queue, a second reply to
        # sender@remote.test (queued earlier) would have been too.
        self.send(m, "other@remote.test", plain("other@remote.test", "third", "m3@remote.test"))
        sinklib.wait_for(lambda: self.replies_to("other@remote.test"), 20, "the reply to the other sender")
        time.sleep(1)
        self.assertEqual(len(self.replies_to("sender@remote.test")), 1)
        self.assertEqual(len(self.wait_folder(m, 3)), 3)
        # The list message got no reply either.
        self.assertEqual(self.replies_to("owner@lists.remote.test"), [])

    def test_broken_script_keeps_the_message_and_logs_the_line(self):
        m = self.sieve_daemon(BROKEN_SCRIPT)  # line 3: an unknown command
        self.send(m, "sender@remote.test", plain("sender@remote.test", "x marks", "b1@remote.test"))
        inbox = self.wait_folder(m, 1)
        self.assertIn(b"hello x marks", inbox[0][1])
        self.assertEqual(self.folder(m, "Lists"), [])
        log = sinklib.wait_for(lambda: "Sieve script does not compile" in self.log_of(m) and self.log_of(m), 5,
                               "the compile error in the log")
        line = [x for x in log.splitlines() if "Sieve script does not compile" in x][0]
        self.assertRegex(line, r"line 3\b")
        self.assertEqual(self.replies_to("sender@remote.test"), [])


if __name__ == "__main__":
    sinklib.main()
