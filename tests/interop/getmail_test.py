"""getmail6 pulling from mailroomd over POP3S and IMAPS: every message arrives whole, and with
delete = true the mailbox is empty afterwards."""
import os
import poplib
import subprocess
import unittest

import sinklib

BODIES = [b"Subject: g1\r\n\r\nfirst\r\n.dot\r\n", b"Subject: g2\r\n\r\n" + b"y" * 3000 + b"\r\n"]


class GetmailTest(unittest.TestCase):
    def setUp(self):
        sinklib.require_tool("getmail")
        self.m = sinklib.Mailroomd(("mx", "pop3s", "imaps"))

    def tearDown(self):
        self.assertEqual(self.m.close(), 0)

    def fetch(self, kind, retriever):
        self.m.deliver(*BODIES)
        d = os.path.join(self.m.dir, "getmail-" + kind)
        out = os.path.join(d, "out")
        os.makedirs(out)
        rc = os.path.join(d, "getmailrc")
        with open(rc, "w") as f:
            f.write("[retriever]\ntype = %s\nserver = 127.0.0.1\nport = %d\nusername = %s\npassword = %s\n"
                    % (retriever, self.m.ports[kind], self.m.USER, self.m.PASS))
            # getmail refuses its Maildir destination as root; an external MDA is allowed explicitly.
            f.write("[destination]\ntype = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"cat > %s/$$\")\n"
                    "allow_root_commands = true\n[options]\nread_all = true\ndelete = true\n" % out)
        r = subprocess.run(["getmail", "--getmaildir", d, "--rcfile", rc], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = []
        for n in os.listdir(out):
            with open(os.path.join(out, n), "rb") as f:
                got.append(f.read().replace(b"\r\n", b"\n"))
        self.assertEqual(len(got), 2)
        # getmail adds header lines of its own (over IMAP after ours): compare subject and body.
        for body in BODIES:
            head, text = body.replace(b"\r\n", b"\n").split(b"\n\n", 1)
            self.assertTrue(any(head in g.split(b"\n\n", 1)[0] and g.split(b"\n\n", 1)[1] == text for g in got), body)
        p = poplib.POP3_SSL("127.0.0.1", self.m.ports["pop3s"], timeout=10, context=sinklib.insecure_tls())
        p.user(self.m.USER)
        p.pass_(self.m.PASS)
        self.assertEqual(p.stat()[0], 0)
        p.quit()

    def test_pop3s(self):
        self.fetch("pop3s", "SimplePOP3SSLRetriever")

    def test_imaps(self):
        self.fetch("imaps", "SimpleIMAPSSLRetriever")


if __name__ == "__main__":
    unittest.main(verbosity=2)
