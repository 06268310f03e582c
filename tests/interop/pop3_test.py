"""mailroomd's POP3 server with real clients: Python poplib (STLS, POP3S, USER/PASS, AUTH PLAIN,
STAT/LIST/UIDL/RETR/TOP/DELE/RSET/QUIT), curl pop3s:// and fetchmail pulling and deleting."""
import os
import poplib
import subprocess
import unittest

import sinklib

USER, PASS = "demo@example.test", "demo"
BODIES = [b"Subject: first\r\n\r\nhello\r\n.starts with a dot\r\nend\r\n",
          b"Subject: second\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
          b"Subject: third\r\n\r\n" + (b"x" * 70 + b"\r\n") * 1000]


tls = sinklib.insecure_tls


class Pop3Test(unittest.TestCase):
    def setUp(self):
        self.m = sinklib.Mailroomd(("mx", "pop3", "pop3s"))
        self.ports, self.dir = self.m.ports, self.m.dir
        self.m.deliver(*BODIES)

    def start(self):
        self.m.start()

    def stop(self):
        self.assertEqual(self.m.stop(), 0)

    def tearDown(self):
        self.assertEqual(self.m.close(), 0)

    def stls_login(self):
        p = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=10)
        p.stls(context=tls())
        p.user(USER)
        p.pass_(PASS)
        return p

    def test_stls_user_pass_and_every_transaction_command(self):
        p = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=10)
        self.assertIn("STLS", p.capa())
        with self.assertRaises(poplib.error_proto):  # no passwords before TLS
            p.user(USER)
        p.stls(context=tls())
        self.assertNotIn("STLS", p.capa())
        self.assertIn("USER", p.capa())
        p.user(USER)
        p.pass_(PASS)
        count, size = p.stat()
        self.assertEqual(count, 3)
        self.assertGreater(size, sum(len(b) for b in BODIES))  # plus Received:, Return-Path:, Delivered-To:
        listing = p.list()[1]
        self.assertEqual(len(listing), 3)
        uidls = p.uidl()[1]
        self.assertEqual(len(set(u.split()[1] for u in uidls)), 3)
        lines = p.retr(1)[1]
        self.assertIn(b".starts with a dot", lines)  # poplib removes the stuffing we added
        self.assertEqual(lines[-1], b"end")
        self.assertEqual(int(p.list(1).split()[2]), sum(len(l) + 2 for l in lines))
        top = p.top(2, 1)[1]
        self.assertIn(b"Subject: second", top)
        self.assertEqual(top[-1], b"line 1")
        self.assertEqual(len(b"\r\n".join(p.retr(3)[1])) > 70000, True)
        p.dele(1)
        with self.assertRaises(poplib.error_proto):
            p.retr(1)
        p.rset()
        p.dele(2)
        p.noop()
        p.quit()
        p = self.stls_login()
        self.assertEqual(p.stat()[0], 2)
        after = p.uidl()[1]
        self.assertEqual([u.split()[1] for u in after], [uidls[0].split()[1], uidls[2].split()[1]])
        p.quit()
        # UIDLs survive a restart.
        self.stop()
        self.start()
        p = self.stls_login()
        self.assertEqual([u.split()[1] for u in p.uidl()[1]], [u.split()[1] for u in after])
        p.quit()

    def test_pop3s_auth_plain_and_wrong_password(self):
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], timeout=10, context=tls())
        self.assertIn("SASL", p.capa())
        with self.assertRaises(poplib.error_proto):
            p.user(USER)
            p.pass_("wrong")
        p.close()
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], timeout=10, context=tls())
        import base64
        token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASS.encode()).decode()
        self.assertTrue(p._shortcmd("AUTH PLAIN " + token).startswith(b"+OK"))
        self.assertEqual(p.stat()[0], 3)
        p.quit()

    def test_curl(self):
        sinklib.require_tool("curl")
        base = "pop3s://127.0.0.1:%d/" % self.ports["pop3s"]
        r = subprocess.run(["curl", "-sS", "-k", "-u", "%s:%s" % (USER, PASS), base], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 3)
        r = subprocess.run(["curl", "-sS", "-k", "-u", "%s:%s" % (USER, PASS), base + "2"], capture_output=True,
                           timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(BODIES[1]))
        # curl over the plain port, upgraded with STLS.
        r = subprocess.run(["curl", "-sS", "-k", "--ssl-reqd", "-u", "%s:%s" % (USER, PASS),
                            "pop3://127.0.0.1:%d/1" % self.ports["pop3"]], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(BODIES[0]))

    def test_fetchmail_pulls_and_deletes(self):
        sinklib.require_tool("fetchmail")
        out = os.path.join(self.dir, "fetched")
        os.makedirs(out)
        rc = os.path.join(self.dir, "fetchmailrc")
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 protocol pop3 port %d user "%s" password "%s" ssl no sslcertck '
                    'nokeep mda "/bin/sh -c \'cat > %s/$$\'"\n' % (self.ports["pop3s"], USER, PASS, out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=self.dir, FETCHMAILHOME=self.dir)
        r = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "--nodetach"], capture_output=True, timeout=60,
                           env=env)
        self.assertIn(r.returncode, (0,), r.stdout + r.stderr)
        fetched = []
        for n in os.listdir(out):
            with open(os.path.join(out, n), "rb") as f:
                fetched.append(f.read())
        self.assertEqual(len(fetched), 3)
        for body in BODIES:
            self.assertTrue(any(m.replace(b"\r\n", b"\n").endswith(body.replace(b"\r\n", b"\n")) for m in fetched))
        p = self.stls_login()
        self.assertEqual(p.stat()[0], 0)  # nokeep: deleted at QUIT
        p.quit()


if __name__ == "__main__":
    unittest.main(verbosity=2)
