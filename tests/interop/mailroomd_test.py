"""mailroomd end to end with real clients: submission (STARTTLS + AUTH), submissions (TLS + AUTH),
MX, LMTP, relay refusal, unknown users, and configuration checking."""
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

import sinklib

BIN = os.path.join(sinklib.BIN_DIR, "mailroomd")
CTL = os.path.join(sinklib.BIN_DIR, "mailroomctl")


tls = sinklib.insecure_tls


class MailroomdTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mailroomd-")
        d = self.dir
        os.makedirs(os.path.join(d, "mail", "demo"))
        sinklib.make_cert(d)
        h = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=b"demo\n", capture_output=True, check=True)
        with open(d + "/passwd", "w") as f:
            f.write("demo@example.test:{SHA512-CRYPT}%s\n" % h.stdout.decode().strip())
        self.ports = {k: sinklib.free_port() for k in ("mx", "submission", "submissions", "lmtp")}
        self.config = d + "/mailroomd.toml"
        self.aliases = d + "/aliases"
        with open(self.aliases, "w") as f:
            f.write("sales: demo\n")
        self.write_config()
        self.log = open(d + "/log", "w+")
        self.start()

    def write_config(self, extra=""):
        d = self.dir
        with open(self.config, "w") as f:
            f.write('hostname = "mx.example.test"\ndata_dir = "%s"\nlocal_domains = ["example.test"]\n' % d)
            f.write('[tls]\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n[auth]\npasswd_file = "%s/passwd"\n' % (d, d, d))
            f.write('[mda]\naliases = "%s"\n%s' % (self.aliases, extra))
            for kind, port in self.ports.items():
                f.write('[[listener]]\nkind = "%s"\naddress = "127.0.0.1:%d"\n' % (kind, port))

    def start(self):
        self.proc = subprocess.Popen([BIN, "--config", self.config], stdout=subprocess.PIPE, stderr=self.log)
        for port in self.ports.values():
            sinklib.wait_port(port, self.proc)

    def restart(self, extra):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=15)
        self.write_config(extra)
        self.start()

    def tearDown(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=15)
        self.assertEqual(self.proc.returncode, 0)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def maildir(self, count, timeout=10):
        new = os.path.join(self.dir, "mail", "demo", "Maildir", "new")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.isdir(new) and len(os.listdir(new)) >= count:
                break
            time.sleep(0.05)
        out = []
        for name in sorted(os.listdir(new)) if os.path.isdir(new) else []:
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def test_submission_needs_tls_and_auth_then_delivers(self):
        with smtplib.SMTP("127.0.0.1", self.ports["submission"], timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.mail("demo@example.test")[0], 530)  # STARTTLS first
            s.starttls(context=tls())
            s.ehlo()
            self.assertEqual(s.mail("demo@example.test")[0], 530)  # then AUTH
            s.login("demo@example.test", "demo")
            s.sendmail("demo@example.test", ["demo@example.test"], b"Subject: submitted\r\n\r\nhello\r\n")
            # An authenticated user may send anywhere: queued for outbound delivery.
            self.assertEqual(s.sendmail("demo@example.test", ["friend@remote.example"], b"Subject: out\r\n\r\nx\r\n"), {})
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused):  # but the MX is no open relay
                s.sendmail("someone@elsewhere.example", ["friend@remote.example"], b"Subject: relay?\r\n\r\nx\r\n")
        msgs = self.maildir(1)
        submitted = [m for m in msgs if m.endswith(b"Subject: submitted\r\n\r\nhello\r\n")]
        self.assertEqual(len(submitted), 1)
        self.assertIn(b"with ESMTPSA", submitted[0])
        # remote.example does not exist: depending on the machine's DNS the outbound copy is
        # deferred (no answer) or bounced at once (NXDOMAIN); a bounce is the only other mail.
        for other in msgs:
            if other is not submitted[0]:
                self.assertIn(b"report-type=delivery-status", other)
                self.assertIn(b"friend@remote.example", other)

    def test_submissions_implicit_tls(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.ports["submissions"], timeout=10, context=tls()) as s:
            s.login("demo@example.test", "demo")
            s.sendmail("demo@example.test", ["demo+folder@example.test"], b"Subject: tls\r\n\r\nsecure\r\n")
        self.assertIn(b"Delivered-To: demo+folder@example.test", self.maildir(1)[0])

    def test_mx_accepts_local_users_only(self):
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.ehlo()
            s.sendmail("someone@remote.example", ["DEMO@example.test"], b"Subject: mx\r\n\r\ninbound\r\n")
            for rcpt, code in (("nobody@example.test", 550), ("victim@remote.example", 554), ("../x@example.test", 501),
                               ('"a/b"@example.test', 550)):
                s.rset()
                s.mail("someone@remote.example")
                self.assertEqual(s.rcpt(rcpt)[0], code, rcpt)
        self.assertEqual(len(self.maildir(1)), 1)

    def test_lmtp(self):
        with smtplib.LMTP("127.0.0.1", self.ports["lmtp"], timeout=10) as s:
            s.sendmail("someone@remote.example", ["demo@example.test"], b"Subject: lmtp\r\n\r\nvia lmtp\r\n")
        self.assertIn(b"via lmtp", self.maildir(1)[0])

    def ctl(self, *args, stdin=None):
        return subprocess.run([CTL, "--config", self.config] + list(args), input=stdin, capture_output=True,
                              timeout=20)

    def login_ok(self, user, password):
        with smtplib.SMTP_SSL("127.0.0.1", self.ports["submissions"], timeout=10, context=tls()) as s:
            try:
                s.login(user, password)
                return True
            except smtplib.SMTPAuthenticationError:
                return False

    def test_mailroomctl_users(self):
        r = self.ctl("user", "add", "bob@example.test", stdin=b"bob pass\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isdir(os.path.join(self.dir, "mail", "bob")))
        self.assertEqual(self.ctl("user", "add", "bob@example.test", stdin=b"x\n").returncode, 1)
        self.assertEqual(self.ctl("user", "list").stdout.split(), [b"demo@example.test", b"bob@example.test"])
        time.sleep(1.1)  # mailroomd re-reads the passwd file when it changes, at most once a second
        self.assertTrue(self.login_ok("bob@example.test", "bob pass"))
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.sendmail("x@remote.example", ["bob@example.test"], b"Subject: to bob\r\n\r\nhi bob\r\n")
        self.assertEqual(self.ctl("user", "passwd", "bob@example.test", stdin=b"new pass\n").returncode, 0)
        time.sleep(1.1)
        self.assertFalse(self.login_ok("bob@example.test", "bob pass"))
        self.assertTrue(self.login_ok("bob@example.test", "new pass"))
        self.assertEqual(self.ctl("user", "del", "bob@example.test").returncode, 0)
        time.sleep(1.1)
        self.assertFalse(self.login_ok("bob@example.test", "new pass"))
        self.assertEqual(self.ctl("user", "del", "bob@example.test").returncode, 1)

    def test_mailroomctl_queue(self):
        # Break demo's Maildir so delivery fails temporarily and the message is deferred (the
        # account still exists, so RCPT is accepted).
        tmp = os.path.join(self.dir, "mail", "demo", "Maildir", "tmp")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.dir, "mail", "demo", "Maildir", sub), exist_ok=True)
        os.rmdir(tmp)
        with open(tmp, "w") as f:
            f.write("not a directory")
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.sendmail("x@remote.example", ["demo@example.test"], b"Subject: later\r\n\r\nretry me\r\n")
        deferred = os.path.join(self.dir, "queue", "deferred")
        deadline = time.time() + 10
        while time.time() < deadline and not os.listdir(deferred):
            time.sleep(0.05)
        ids = os.listdir(deferred)
        self.assertEqual(len(ids), 1)
        out = self.ctl("queue", "list", "deferred").stdout.decode()
        self.assertIn(ids[0] + "  deferred", out)
        self.assertIn("attempts 1", out)
        self.assertIn("to <demo@example.test>", out)
        self.assertEqual(self.ctl("queue", "hold", ids[0]).returncode, 0)
        self.assertIn("hold", self.ctl("queue", "list").stdout.decode())
        self.assertEqual(self.ctl("queue", "hold", ids[0]).returncode, 1)  # already on hold
        self.assertEqual(self.ctl("queue", "delete", "nosuchid").returncode, 1)
        os.unlink(tmp)  # repaired
        os.mkdir(tmp)
        self.assertEqual(self.ctl("queue", "release", ids[0]).returncode, 0)
        msgs = self.maildir(1, timeout=15)
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"retry me", msgs[0])
        self.assertIn(b"0 messages", self.ctl("queue", "list").stdout)

    def test_aliases_and_sighup_reload(self):
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.sendmail("x@remote.example", ["Sales+q4@example.test"], b"Subject: alias\r\n\r\nvia alias\r\n")
        msgs = self.maildir(1)
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"Delivered-To: Sales+q4@example.test", msgs[0])
        with open(self.aliases, "w") as f:
            f.write("info: demo\n@example.test: demo\n")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            self.log.seek(0)
            if "reloaded" in self.log.read():
                break
            time.sleep(0.05)
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.sendmail("x@remote.example", ["info@example.test", "anyone@example.test"],
                       b"Subject: reloaded\r\n\r\nnew map\r\n")
        self.assertEqual(len(self.maildir(2)), 2)
        # A broken map on reload keeps the running one.
        with open(self.aliases, "w") as f:
            f.write("")
        os.chmod(self.aliases, 0)
        os.rename(self.aliases, self.aliases + ".gone")
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.sendmail("x@remote.example", ["info@example.test"], b"Subject: still\r\n\r\nold map\r\n")
        self.assertEqual(len(self.maildir(3)), 3)
        self.log.seek(0)
        self.assertIn("reload failed", self.log.read())
        os.rename(self.aliases + ".gone", self.aliases)

    def test_quota(self):
        self.restart("quota = 2000\n")
        body = b"Subject: big\r\n\r\n" + b"x" * 1200 + b"\r\n"
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.sendmail("x@remote.example", ["demo@example.test"], body)
        self.assertEqual(len(self.maildir(1)), 1)
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.ehlo()
            s.mail("x@remote.example", ["SIZE=%d" % len(body)])
            code, text = s.rcpt("demo@example.test")
            self.assertEqual(code, 552)
            self.assertIn(b"5.2.2", text)
        with open(os.path.join(self.dir, "mail", "demo", "Maildir", "maildirsize"), "rb") as f:
            self.assertTrue(f.read().startswith(b"2000S\n"))
        self.restart("quota = 2000\nquota_tempfail = true\n")
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
            s.ehlo()
            s.mail("x@remote.example", ["SIZE=%d" % len(body)])
            code, text = s.rcpt("demo@example.test")
            self.assertEqual(code, 452)
            self.assertIn(b"4.2.2", text)

    def test_check_config(self):
        r = subprocess.run([BIN, "--check-config", self.config], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"local_domains = [ 'example.test' ]", r.stdout)
        bad = os.path.join(self.dir, "bad.toml")
        with open(bad, "w") as f:
            f.write('data_dir = "/x"\nlocal_domains = ["a"]\n[[listener]]\nkind = "pop5"\naddress = "1:2"\n')
        r = subprocess.run([BIN, "--check-config", bad], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"bad.toml: listener kind must be", r.stderr)
        with open(bad, "w") as f:
            f.write('data_dir = "/x\n')
        r = subprocess.run([BIN, "--check-config", bad], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"bad.toml:1:", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
