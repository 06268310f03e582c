"""swaks, curl and openssl s_client (clients nobody here wrote) against smtp_sink."""
import os
import subprocess
import sys
import tempfile

import sinklib
from sinklib import PASSWORD, USER

TOOL = sys.argv.pop(1) if len(sys.argv) > 1 else "swaks"
sinklib.require_tool({"swaks": "swaks", "curl": "curl", "openssl": "openssl", "gsasl": "gsasl"}[TOOL])


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=60, **kw)


class SwaksTest(sinklib.SinkTest):
    def swaks(self, *extra):
        return run(["swaks", "--server", "127.0.0.1", "--port", str(self.sink.port), "--from", "a@example.org",
                    "--to", "b@example.net", "--helo", "swaks.test", "--timeout", "20"] + list(extra))

    def test_plain(self):
        r = self.swaks("--header", "Subject: swaks plain")
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        self.assertIn(b"Subject: swaks plain", self.sink.messages()[0])

    def test_pipelining(self):
        r = self.swaks("--pipeline", "--header", "Subject: piped")
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        self.assertEqual(len(self.sink.messages()), 1)

    def test_starttls_auth_plain_and_login(self):
        for mech in ("PLAIN", "LOGIN"):
            r = self.swaks("--tls", "--auth", mech, "--auth-user", USER, "--auth-password", PASSWORD,
                           "--header", "Subject: auth " + mech)
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 2)

    def test_wrong_password_is_refused(self):
        r = self.swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", "nope")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"535 5.7.8", r.stdout)
        self.assertEqual(self.sink.messages(), [])

    def test_auth_without_tls_is_refused(self):
        r = self.swaks("--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.sink.messages(), [])

    def test_lmtp_with_two_recipients(self):
        # swaks reads LMTP's reply per recipient after the message.
        r = run(["swaks", "--protocol", "LMTP", "--server", "127.0.0.1", "--port", str(self.sink.lmtp_port),
                 "--from", "a@example.org", "--to", "b@example.net,c@example.net", "--timeout", "20"])
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("LHLO", out)
        self.assertEqual(out.count("<-  250 2.0.0 Ok: queued as"), 2, out)
        self.assertEqual(len(self.sink.messages()), 1)

    def test_implicit_tls(self):
        r = run(["swaks", "--server", "127.0.0.1", "--port", str(self.sink.tls_port), "--tlsc", "--from",
                 "a@example.org", "--to", "b@example.net", "--auth", "LOGIN", "--auth-user", USER,
                 "--auth-password", PASSWORD, "--timeout", "20"])
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        self.assertEqual(len(self.sink.messages()), 1)


class SwaksPasswdFileTest(sinklib.SinkTest):
    """AUTH against a passwd file whose hashes openssl wrote (crypt SHA-512 and SHA-256)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mailroom-passwd-")
        path = os.path.join(self.tmp, "passwd")
        with open(path, "w") as f:
            for user, flag in (("carol", "-6"), ("dave", "-5")):
                h = run(["openssl", "passwd", flag, "-stdin"], input=b"file pass\n").stdout.decode().strip()
                f.write("%s:{CRYPT}%s::::/home/%s\n" % (user, h, user))
        self.extra_args = ("--passwd-file", path)
        super().setUp()

    def tearDown(self):
        super().tearDown()
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_passwd_file_users(self):
        for user in ("carol", "dave"):
            r = run(["swaks", "--server", "127.0.0.1", "--port", str(self.sink.port), "--tls", "--auth", "PLAIN",
                     "--auth-user", user, "--auth-password", "file pass", "--from", "a@example.org", "--to",
                     "b@example.net", "--timeout", "20"])
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        r = run(["swaks", "--server", "127.0.0.1", "--port", str(self.sink.port), "--tls", "--auth", "LOGIN",
                 "--auth-user", "carol", "--auth-password", "wrong", "--from", "a@example.org", "--to",
                 "b@example.net", "--timeout", "20"])
        self.assertIn(b"535 5.7.8", r.stdout)
        self.assertEqual(len(self.sink.messages()), 2)


class SwaksRelayTest(sinklib.SinkTest):
    """No open relay: with --local-domain only those domains, unless authenticated."""
    extra_args = ("--local-domain", "example.org")

    def swaks(self, to, *extra):
        return run(["swaks", "--server", "127.0.0.1", "--port", str(self.sink.port), "--from", "a@example.net",
                    "--to", to, "--timeout", "20", "--quit-after", "RCPT"] + list(extra))

    def test_open_relay_attempts_are_refused(self):
        for to in ("victim@remote.example", "x%remote.example@example.org", "remote.example!x@example.org",
                   '"x@remote.example"@example.org', "@relay.example:victim@remote.example", "x@[192.0.2.1]"):
            with self.subTest(to=to):
                r = self.swaks(to)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stdout, rb"<~?\*\* +(554 5\.7\.1|501 5\.5\.4)")

    def test_local_domain_and_authenticated_relay_are_accepted(self):
        self.assertEqual(self.swaks("user@example.org").returncode, 0)
        self.assertEqual(self.swaks("user@EXAMPLE.ORG").returncode, 0)
        r = self.swaks("friend@remote.example", "--tls", "--auth", "PLAIN", "--auth-user", USER,
                       "--auth-password", PASSWORD)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))


class CurlTest(sinklib.SinkTest):
    def upload(self, url, *extra):
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(b"From: a@example.org\r\nTo: b@example.net\r\nSubject: curl\r\n\r\nsent by curl\r\n.dot\r\n")
            path = f.name
        try:
            return run(["curl", "--silent", "--show-error", "--max-time", "20", url, "--mail-from", "a@example.org",
                        "--mail-rcpt", "b@example.net", "--upload-file", path] + list(extra))
        finally:
            os.unlink(path)

    def test_smtp(self):
        r = self.upload("smtp://127.0.0.1:%d/curl.test" % self.sink.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"sent by curl\r\n.dot\r\n", msgs[0])

    def test_smtp_starttls_required_with_auth(self):
        r = self.upload("smtp://127.0.0.1:%d/curl.test" % self.sink.port, "--ssl-reqd", "--insecure",
                        "--user", "%s:%s" % (USER, PASSWORD))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.sink.messages()), 1)

    def test_smtps(self):
        r = self.upload("smtps://127.0.0.1:%d/curl.test" % self.sink.tls_port, "--insecure",
                        "--user", "%s:%s" % (USER, PASSWORD))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.sink.messages()), 1)

    def test_smtps_bad_password(self):
        r = self.upload("smtps://127.0.0.1:%d/curl.test" % self.sink.tls_port, "--insecure",
                        "--user", "%s:%s" % (USER, "bad"))
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.sink.messages(), [])


class OpensslTest(sinklib.SinkTest):
    def s_client(self, args, stdin):
        return run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % args[0], "-servername", "mx.test",
                    "-ign_eof"] + list(args[1:]), input=stdin)

    def test_starttls_handshake(self):
        r = self.s_client([self.sink.port, "-starttls", "smtp", "-tls1_2"], b"EHLO openssl\r\nQUIT\r\n")
        out = r.stdout.decode(errors="replace")
        self.assertIn("CN = mx.test", out)
        self.assertRegex(out, r"Protocol\s*: TLSv1\.2")
        self.assertIn("250-mx.test", out)
        self.assertIn("221 2.0.0", out)

    def test_implicit_tls_handshake(self):
        r = self.s_client([self.sink.tls_port], b"EHLO openssl\r\nQUIT\r\n")
        out = r.stdout.decode(errors="replace")
        self.assertIn("220 mx.test", out)
        self.assertIn("AUTH", out)

    def test_tls_1_0_refused(self):
        r = self.s_client([self.sink.tls_port, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], b"")
        self.assertNotIn("220 mx.test", r.stdout.decode(errors="replace"))
        # The client did offer TLS 1.0 and our server answered with the protocol_version alert.
        self.assertIn(b"alert protocol version", r.stdout + r.stderr)


class GsaslTest(sinklib.SinkTest):
    """GNU SASL's client: the one real SCRAM-SHA-256 client in Debian."""
    openssl_cert = True

    def gsasl(self, mech, password, *extra):
        return run(["gsasl", "--smtp", "--connect", "127.0.0.1:%d" % self.sink.port, "-m", mech, "-a", USER,
                    "-p", password] + list(extra), stdin=subprocess.DEVNULL)

    def test_scram_sha256_over_starttls(self):
        # Verifies our certificate chain and name; --no-cb: we offer SCRAM without channel binding.
        r = self.gsasl("SCRAM-SHA-256", PASSWORD, "--starttls", "--x509-ca-file", self.sink.cert, "--no-cb")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(b"235 2.7.0", r.stdout + r.stderr)

    def test_scram_sha256_wrong_password(self):
        r = self.gsasl("SCRAM-SHA-256", "wrong", "--starttls", "--x509-ca-file", self.sink.cert, "--no-cb")
        self.assertNotEqual(r.returncode, 0)

    def test_plain_and_login_over_starttls(self):
        for mech in ("PLAIN", "LOGIN"):
            r = self.gsasl(mech, PASSWORD, "--starttls", "--x509-ca-file", self.sink.cert)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class GsaslPlaintextTest(sinklib.SinkTest):
    extra_args = ("--allow-plaintext-auth",)

    def test_scram_sha256_without_tls_on_a_lan_listener(self):
        r = run(["gsasl", "--smtp", "--connect", "127.0.0.1:%d" % self.sink.port, "--no-starttls", "-m",
                 "SCRAM-SHA-256", "-a", USER, "-p", PASSWORD], stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    cls = {"swaks": [SwaksTest, SwaksPasswdFileTest, SwaksRelayTest], "curl": [CurlTest], "openssl": [OpensslTest],
           "gsasl": [GsaslTest, GsaslPlaintextTest]}[TOOL]
    import unittest
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c) for c in cls)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
