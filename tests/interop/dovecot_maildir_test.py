"""The Maildir++ store shared with Dovecot: mail that mailroomd delivered (and flagged through its
POP3 server) is read by Dovecot's IMAP server with the same bodies, flags and folders; changes
Dovecot makes (expunge, flags, a new folder with a message) are then seen by mailroomd."""
import imaplib
import os
import poplib
import pwd
import subprocess
import time
import unittest

import sinklib

USER, PASS = "demo@example.test", "demo"
BODIES = [b"Subject: m%d\r\n\r\nbody %d\r\n.dot line\r\n" % (i, i) for i in range(1, 4)] + [
    b"From: \"Doe, Jane\" <jane@remote.example>\r\nTo: Team: a@x.example, b@y.example;\r\nSubject: parts\r\n"
    b"Message-ID: <p1@remote.example>\r\nContent-Type: multipart/mixed; boundary=\"zz\"\r\n\r\npreamble\r\n"
    b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
    b"--zz\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\nQUJD\r\n"
    b"--zz\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y.example\r\n\r\ninner body\r\n"
    b"--zz--\r\n"]

DOVECOT_CONF = """base_dir = {d}/dovecot/run
state_dir = {d}/dovecot/state
log_path = {d}/dovecot/log
ssl = no
disable_plaintext_auth = no
listen = 127.0.0.1
protocols = imap
mail_location = maildir:~/Maildir
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%n
}}
passdb {{
  driver = static
  args = nopassword=y
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class DovecotMaildirTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("Dovecot's mail processes need root to switch to the mail user")
        sinklib.require_tool("dovecot")
        self.m = sinklib.Mailroomd(("mx", "pop3s", "imaps"))
        self.ports, self.dir = self.m.ports, self.m.dir
        os.chmod(self.dir, 0o755)
        self.dovecot = None

    def tearDown(self):
        if self.dovecot:
            subprocess.run(["doveadm", "-c", self.dovecot, "stop"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        self.m.close()

    def pop(self):
        p = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], timeout=10, context=sinklib.insecure_tls())
        p.user(USER)
        p.pass_(PASS)
        return p

    def start_dovecot(self):
        nobody = pwd.getpwnam("nobody")
        # Dovecot runs mail processes as an unprivileged user: hand it the tree.
        for root, dirs, files in os.walk(os.path.join(self.dir, "mail")):
            for n in dirs + files:
                os.chown(os.path.join(root, n), nobody.pw_uid, nobody.pw_gid)
        os.chown(os.path.join(self.dir, "mail"), nobody.pw_uid, nobody.pw_gid)
        port = sinklib.free_port()
        os.makedirs(os.path.join(self.dir, "dovecot", "run"))
        os.makedirs(os.path.join(self.dir, "dovecot", "state"))
        self.dovecot = os.path.join(self.dir, "dovecot", "dovecot.conf")
        with open(self.dovecot, "w") as f:
            f.write(DOVECOT_CONF.format(d=self.dir, uid=nobody.pw_uid, gid=nobody.pw_gid, port=port))
        # Dovecot daemonizes; its children must not hold our pipes open.
        subprocess.run(["dovecot", "-c", self.dovecot], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=self.m.log, timeout=20)
        deadline = time.time() + 10
        while True:
            try:
                return imaplib.IMAP4("127.0.0.1", port, timeout=10)
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def test_dovecot_reads_and_changes_our_maildir(self):
        self.m.deliver(*BODIES)
        deadline = time.time() + 10
        while time.time() < deadline:
            p = self.pop()
            n = p.stat()[0]
            if n == 4:
                break
            p.quit()
            time.sleep(0.1)
        self.assertEqual(n, 4)
        p.retr(1)   # marked \Seen at QUIT
        p.dele(3)   # removed at QUIT
        uidls = [u.split()[1] for u in p.uidl()[1]]
        p.quit()

        imap = self.start_dovecot()
        imap.login("demo", "x")
        typ, folders = imap.list()
        self.assertEqual(typ, "OK")
        names = {f.decode().rsplit(" ", 1)[1].strip('"') for f in folders}
        self.assertTrue({"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= names, names)
        typ, data = imap.select("INBOX")
        self.assertEqual(int(data[0]), 3)
        typ, data = imap.fetch("1:3", "(FLAGS BODY.PEEK[])")
        fetched = [x for x in data if isinstance(x, tuple)]
        self.assertEqual(len(fetched), 3)
        self.assertIn(b"\\Seen", fetched[0][0])
        self.assertNotIn(b"\\Seen", fetched[1][0])
        for (meta, raw), body in zip(fetched, [BODIES[0], BODIES[1], BODIES[3]]):
            self.assertTrue(raw.endswith(body), raw)
            self.assertIn(b"Delivered-To: demo@example.test\r\n", raw)
        # The same messages described by Dovecot and by us: ENVELOPE and BODYSTRUCTURE agree.
        ours = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=sinklib.insecure_tls(), timeout=10)
        ours.login(USER, PASS)
        ours.select("INBOX", readonly=True)
        for n in ("1", "3"):
            theirs_data = imap.fetch(n, "(ENVELOPE BODYSTRUCTURE)")[1]
            ours_data = ours.fetch(n, "(ENVELOPE BODYSTRUCTURE)")[1]
            # Case differs by taste ("TEXT" here, "text" in Dovecot) and means nothing in IMAP.
            self.maxDiff = None
            self.assertEqual([x.lower() for x in ours_data], [x.lower() for x in theirs_data])
        ours.logout()
        # Dovecot changes things: expunges message 2, flags 3, files a message in a new folder.
        imap.store("2", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.store("2", "+FLAGS", "(\\Flagged $Important)")
        imap.create("Reports")
        imap.append("Reports", "(\\Seen)", None, b"Subject: from dovecot\r\n\r\nappended\r\n")
        imap.logout()

        p = self.pop()
        self.assertEqual(p.stat()[0], 2)
        after = [u.split()[1] for u in p.uidl()[1]]
        self.assertEqual(after, [uidls[0], uidls[2]])  # our UIDs stayed
        self.assertTrue(b"\r\n".join(p.retr(2)[1]).endswith(BODIES[3].rstrip(b"\r\n")))
        p.quit()
        reports = os.path.join(self.dir, "mail", "demo", "Maildir", ".Reports", "cur")
        self.assertEqual(len(os.listdir(reports)), 1)
        flagged = [n for n in os.listdir(os.path.join(self.dir, "mail", "demo", "Maildir", "cur")) if ":2," in n and "F" in n.split(":2,")[1]]
        self.assertEqual(len(flagged), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
