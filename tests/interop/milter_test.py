"""A real milter, Debian's opendkim, driven through examples/milter_check (mailroom's milter client):
in signing mode (over TCP on 127.0.0.1 and over a Unix socket) it adds a DKIM-Signature that
mailroom applies and python3-dkim verifies against the public key (no DNS); in verifying mode it
adds an Authentication-Results header that says pass for messages it or python3-dkim signed and
fail for a tampered one. A milter that is not there gives the caller's failure policy."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import sinklib

try:
    import dkim
except ImportError:  # a Python other than Debian's: use Debian's python3-dkim module all the same
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import dkim
    except ImportError:
        dkim = None

OPENDKIM = shutil.which("opendkim") or ("/usr/sbin/opendkim" if os.path.exists("/usr/sbin/opendkim") else None)
SELECTOR, DOMAIN = b"sel", b"example.test"

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: bob@example.org\r\n"
           b"Subject: milter round trip\r\n"
           b"  with a folded line\r\n"
           b"Date: Thu, 03 Dec 2026 11:00:00 +0000\r\n"
           b"Message-ID: <milter-1@example.test>\r\n"
           b"\r\n"
           b"Hello Bob,\r\n\r\nthis went through opendkim.\r\n")


def wait_unix(path, proc, secs=10.0):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("opendkim exited early with %s" % proc.returncode)
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not open" % path)


class OpenDKIM:
    """opendkim in the foreground with its own configuration in d; socket is "inet" or "unix"."""

    def __init__(self, d, name, settings, socket_kind="inet"):
        self.conf = os.path.join(d, name + ".conf")
        if socket_kind == "inet":
            self.port = sinklib.free_port()
            self.spec = "inet:%d@127.0.0.1" % self.port
            listen = self.spec
        else:
            path = os.path.join(d, name + ".sock")
            self.spec, listen = "unix:" + path, "local:" + path
        with open(self.conf, "w") as f:
            f.write("Syslog no\nBackground no\nLogWhy yes\nSocket %s\n" % listen)
            for k, v in settings.items():
                f.write("%s %s\n" % (k, v))
        self.log = open(os.path.join(d, name + ".log"), "w+")
        self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", self.conf], stdout=self.log, stderr=subprocess.STDOUT)
        if socket_kind == "inet":
            sinklib.wait_port(self.port, self.proc)
        else:
            wait_unix(listen[len("local:"):], self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        return text


class MilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if OPENDKIM is None:
            print("SKIP: opendkim is not installed (scripts/setup.sh installs it)")
            sys.exit(77)
        sinklib.require_tool("openssl")
        if dkim is None:
            print("SKIP: python3-dkim is not installed (scripts/setup.sh installs it)")
            sys.exit(77)
        cls.bin = os.path.join(sinklib.BIN_DIR, "milter_check")
        if not os.path.exists(cls.bin):
            raise RuntimeError("milter_check not built in %s" % sinklib.BIN_DIR)
        cls.dir = tempfile.mkdtemp(prefix="mailroom-milter-")
        os.chmod(cls.dir, 0o755)
        cls.key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "genrsa", "-out", cls.key, "2048"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "rsa", "-in", cls.key, "-pubout", "-outform", "DER"], check=True,
                             capture_output=True).stdout
        import base64
        cls.record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
        cls.keys = os.path.join(cls.dir, "public-keys")
        with open(cls.keys, "wb") as f:
            f.write(b"%s._domainkey.%s %s\n" % (SELECTOR, DOMAIN, cls.record))
        with open(cls.key, "rb") as f:
            cls.private = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.milters = []

    def tearDown(self):
        for m in self.milters:
            died = m.proc.poll() is not None
            log = m.stop()
            if died:
                print("opendkim exited during the test; its log:\n" + log)

    def start(self, name, settings, socket_kind="inet"):
        m = OpenDKIM(self.dir, name, settings, socket_kind)
        self.milters.append(m)
        return m

    def signer(self, canon, socket_kind="inet"):
        return self.start("sign-" + canon.replace("/", "-"), {
            "Mode": "s", "Domain": DOMAIN.decode(), "Selector": SELECTOR.decode(), "KeyFile": self.key,
            "RequireSafeKeys": "false", "Canonicalization": canon}, socket_kind)

    def verifier(self):
        return self.start("verify", {"Mode": "v", "TestPublicKeys": self.keys, "AuthservID": "mx.test"})

    def check(self, spec, message, *args):
        """milter_check's message (stdout), its stderr and exit code."""
        r = subprocess.run([self.bin, "--milter", spec, "--from", "alice@example.test", "--rcpt", "bob@example.org",
                            "--timeout", "10"] + list(args), input=message, capture_output=True, timeout=60)
        return r.stdout, r.stderr.decode(errors="replace"), r.returncode

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, str):
            name = name.encode()
        return self.record if name.rstrip(b".") == b"%s._domainkey.%s" % (SELECTOR, DOMAIN) else None

    def sign(self, canon, socket_kind="inet"):
        m = self.signer(canon, socket_kind)
        out, err, code = self.check(m.spec, MESSAGE)
        self.assertEqual(code, 0, err)
        self.assertIn("verdict: accept", err)
        return out

    def test_sign_over_tcp_and_unix_verify_with_python(self):
        for canon, kind in (("relaxed/simple", "inet"), ("simple/simple", "unix"), ("relaxed/relaxed", "inet")):
            with self.subTest(canon=canon, socket=kind):
                signed = self.sign(canon, kind)
                # One header added at the top, the message otherwise byte for byte what went in.
                self.assertTrue(signed.startswith(b"DKIM-Signature:"), signed[:200])
                sig_end = signed.index(b"\r\nFrom: ") + 2
                self.assertEqual(signed[sig_end:], MESSAGE)
                self.assertIn(b"c=" + canon.encode() + b";", signed[:sig_end].replace(b"\r\n\t", b" "))
                self.assertNotIn(b"\n", signed[:sig_end].replace(b"\r\n", b""))  # CRLF only
                self.assertTrue(dkim.verify(signed, dnsfunc=self.dnsfunc), signed.decode(errors="replace"))
                # The check can fail: a changed body or a changed signed header does not verify.
                self.assertFalse(dkim.verify(signed.replace(b"through opendkim", b"through openDKIM"),
                                             dnsfunc=self.dnsfunc))
                self.assertFalse(dkim.verify(signed.replace(b"Subject: milter", b"Subject: Milter"),
                                             dnsfunc=self.dnsfunc))

    def test_verify_mode_adds_authentication_results(self):
        signed = self.sign("relaxed/simple")
        by_python = dkim.sign(MESSAGE, SELECTOR, DOMAIN, self.private,
                              include_headers=[b"from", b"to", b"subject"]) + MESSAGE
        v = self.verifier()
        for name, message, want in (("opendkim's signature", signed, "dkim=pass"),
                                    ("python3-dkim's signature", by_python, "dkim=pass"),
                                    ("tampered", signed.replace(b"Hello Bob", b"Hello Eve"), "dkim=fail"),
                                    ("unsigned", MESSAGE, None)):
            with self.subTest(message=name):
                out, err, code = self.check(v.spec, message, "--client-ip", "192.0.2.10",
                                            "--client-name", "mail.example.org")
                self.assertEqual(code, 0, err)
                if want is None:
                    self.assertEqual(out, message)  # nothing to say about an unsigned message
                    continue
                self.assertTrue(out.startswith(b"Authentication-Results: mx.test;"), out[:300])
                ar_end = out.index(message[:20])
                ar = out[:ar_end].decode()
                self.assertIn(want, ar)
                self.assertIn("header.d=example.test", ar)
                self.assertEqual(out[ar_end:], message)

    def test_milter_not_there_applies_the_failure_policy(self):
        port = sinklib.free_port()
        spec = "inet:%d@127.0.0.1" % port
        out, err, code = self.check(spec, MESSAGE)
        self.assertEqual(code, 2, err)
        self.assertIn("milter failed at connect", err)
        self.assertIn("verdict: tempfail", err)
        out, err, code = self.check(spec, MESSAGE, "--on-failure", "accept")
        self.assertEqual(code, 2, err)
        self.assertIn("verdict: continue", err)
        self.assertEqual(out, MESSAGE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
