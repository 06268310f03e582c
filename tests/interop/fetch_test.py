"""The retrieval agent against a real Dovecot (IMAP and POP3 on loopback, a passwd file, a Maildir
this test fills): mailroomd's [[fetch]] pulls 1,000 messages into the demo user's INBOX, is
SIGKILLed part-way and restarted, and every message arrives (at most one repeat from the fetch
and one from the queue delivery in flight at the kill); POP3 in delete mode leaves the remote mailbox empty;
IMAP IDLE brings a new message without waiting for the poll; a UIDVALIDITY change makes the folder
come again; implicit TLS verifies Dovecot's certificate (refused without its CA, fetched with it)."""
import os
import pwd
import re
import signal
import subprocess
import time
import unittest

import sinklib

N = int(os.environ.get("FETCH_MESSAGES", "1000"))

DOVECOT_CONF = """base_dir = {d}/dovecot/run
state_dir = {d}/dovecot/state
log_path = {d}/dovecot/log
{ssl}
disable_plaintext_auth = no
mailbox_idle_check_interval = 1 secs
listen = 127.0.0.1
protocols = imap pop3
mail_location = maildir:{d}/remote/Maildir
pop3_uidl_format = %08Xu%08Xv
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/remote
}}
passdb {{
  driver = passwd-file
  args = {d}/remote-passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


def body(i):
    return (b"From: far@remote.example\r\nSubject: fetched %d\r\nX-Seq: %d\r\n\r\n" % (i, i)) + b"line\r\n" * 20


class FetchTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("Dovecot's mail processes need root to switch to the mail user")
        sinklib.require_tool("dovecot")
        self.imap_port, self.pop3_port = sinklib.free_port(), sinklib.free_port()
        self.m = None
        self.dir = None

    def add_remote(self, first, n):
        """Messages first..first+n-1 into the remote Maildir's new/, as Dovecot's mail user owns them."""
        nobody = pwd.getpwnam("nobody")
        for i in range(first, first + n):
            path = os.path.join(self.dir, "remote", "Maildir", "new", "%d.M%dP1.remote" % (1700000000 + i, i))
            with open(path + ".tmp", "wb") as f:
                f.write(body(i))
            os.chown(path + ".tmp", nobody.pw_uid, nobody.pw_gid)
            os.rename(path + ".tmp", path)

    def start_dovecot(self, n, tls=False):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="dovecot-fetch-")
        d = self.dir
        os.chmod(d, 0o755)
        nobody = pwd.getpwnam("nobody")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(d, "remote", "Maildir", sub))
        for root, dirs, files in os.walk(os.path.join(d, "remote")):
            for x in dirs + files:
                os.chown(os.path.join(root, x), nobody.pw_uid, nobody.pw_gid)
        os.chown(os.path.join(d, "remote"), nobody.pw_uid, nobody.pw_gid)
        self.add_remote(0, n)
        ssl = "ssl = no"
        self.imaps_port = 0
        if tls:
            # A private CA and a certificate for the address mailroomd connects to.
            self.ca = d + "/ca.pem"
            run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, cwd=d)
            run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
                "-days", "2", "-subj", "/CN=fetch test CA")
            run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.pem",
                "-subj", "/CN=127.0.0.1")
            run("openssl", "x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", "cert.pem", "-days", "2")
            ssl = "ssl = yes\nssl_cert = <%s/cert.pem\nssl_key = <%s/key.pem" % (d, d)
            self.imaps_port = sinklib.free_port()
        with open(d + "/remote-passwd", "w") as f:
            f.write("remote:{PLAIN}rpass\n")
        os.makedirs(os.path.join(d, "dovecot", "run"))
        os.makedirs(os.path.join(d, "dovecot", "state"))
        self.conf = os.path.join(d, "dovecot", "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=d, uid=nobody.pw_uid, gid=nobody.pw_gid, imap=self.imap_port,
                                        pop3=self.pop3_port, imaps=self.imaps_port, ssl=ssl))
        subprocess.run(["dovecot", "-c", self.conf], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
        sinklib.wait_port(self.imap_port, None, 10)
        sinklib.wait_port(self.pop3_port, None, 10)

    def tearDown(self):
        if self.m:
            self.m.close()
        if self.dir:
            subprocess.run(["doveadm", "-c", self.conf, "stop"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)

    def inbox(self):
        new = os.path.join(self.m.dir, "mail", "demo", "Maildir", "new")
        counts = {}
        if not os.path.isdir(new):
            return counts
        for name in os.listdir(new):
            try:
                with open(os.path.join(new, name), "rb") as f:
                    mt = re.search(rb"X-Seq: (\d+)", f.read())
            except OSError:
                continue
            if mt:
                counts[int(mt.group(1))] = counts.get(int(mt.group(1)), 0) + 1
        return counts

    def mailroomd(self, protocol, port, keep, extra="interval = 1\n"):
        fetch = ('[[fetch]]\nid = "remote-%s"\nprotocol = "%s"\nhost = "127.0.0.1"\nport = %d\ntls = "none"\n'
                 'user = "remote"\npassword = "rpass"\nkeep = %s\ndeliver_to = "demo@example.test"\n%s'
                 % (protocol, protocol, port, "true" if keep else "false", extra))
        return sinklib.Mailroomd(("mx",), extra_config="[outbound]\nenabled = false\n" + fetch)

    def wait_inbox(self, n, secs, what):
        return sinklib.wait_for(lambda: (lambda c: c if len(c) >= n else None)(self.inbox()), secs, what)

    def test_imap_idle_brings_new_mail_without_polling(self):
        self.start_dovecot(3)
        # A poll every hour: only IDLE can bring the fourth message in time.
        self.m = self.mailroomd("imap", self.imap_port, True, "interval = 3600\nidle = true\n")
        self.wait_inbox(3, 30, "the first three messages")
        time.sleep(1)  # mailroomd is in IDLE now
        start = time.time()
        self.add_remote(3, 1)
        counts = self.wait_inbox(4, 20, "the message pushed through IDLE")
        print("IDLE push took %.1f s" % (time.time() - start))
        self.assertEqual(counts, {0: 1, 1: 1, 2: 1, 3: 1})

    def test_imap_uidvalidity_change_fetches_the_folder_again(self):
        self.start_dovecot(5)
        self.m = self.mailroomd("imap", self.imap_port, True)
        self.wait_inbox(5, 30, "five messages")
        time.sleep(2)
        self.assertEqual(self.inbox(), {i: 1 for i in range(5)})
        # Dovecot forgets its UID list and index: the folder gets a new UIDVALIDITY (from the clock)
        # and new UIDs, so what mailroomd remembered no longer names these messages.
        self.m.stop()
        subprocess.run(["doveadm", "-c", self.conf, "stop"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=20)
        maildir = os.path.join(self.dir, "remote", "Maildir")
        for name in os.listdir(maildir):
            if name.startswith("dovecot"):
                os.remove(os.path.join(maildir, name))
        time.sleep(1.1)
        # Dovecot's daemons keep its stdout/stderr: no pipes, or run() would wait for them.
        subprocess.run(["dovecot", "-c", self.conf], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=20)
        sinklib.wait_port(self.imap_port, None, 10)
        self.m.start()
        counts = sinklib.wait_for(lambda: (lambda c: c if sum(c.values()) >= 10 else None)(self.inbox()), 30,
                                  "the folder fetched again")
        time.sleep(3)
        self.assertEqual(self.inbox(), {i: 2 for i in range(5)})

    def test_implicit_tls_verifies_dovecots_certificate(self):
        self.start_dovecot(4, tls=True)
        sinklib.wait_port(self.imaps_port, None, 10)
        entry = ('[[fetch]]\nid = "%s"\nprotocol = "imap"\nhost = "127.0.0.1"\nport = %d\ntls = "implicit"\n'
                 'user = "remote"\npassword = "rpass"\ndeliver_to = "demo@example.test"\ninterval = 3600\n%s')
        self.m = sinklib.Mailroomd(("mx",), extra_config="[outbound]\nenabled = false\n" +
                                   entry % ("untrusted", self.imaps_port, "") +
                                   entry % ("trusted", self.imaps_port, 'ca_file = "%s"\n' % self.ca))
        counts = self.wait_inbox(4, 30, "four messages over verified TLS")
        ctl = [os.path.join(sinklib.BIN_DIR, "mailroomctl"), "--config", self.m.config, "fetch"]
        r = subprocess.run(ctl + ["run", "untrusted"], capture_output=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn(b"untrusted:", r.stderr)
        self.assertIn(b"verif", r.stderr.lower())
        r = subprocess.run(ctl + ["list"], capture_output=True, timeout=30)
        self.assertRegex(r.stdout, rb"(?m)^untrusted .* 0 remembered$")
        self.assertRegex(r.stdout, rb"(?m)^trusted .* 4 remembered$")
        time.sleep(2)
        self.assertEqual(self.inbox(), {i: 1 for i in range(4)})

    def test_imap_1000_messages_across_a_kill_and_restart(self):
        self.start_dovecot(N)
        self.m = self.mailroomd("imap", self.imap_port, True)
        sinklib.wait_for(lambda: len(self.inbox()) >= N // 3, 120, "a third of the messages")
        self.m.proc.send_signal(signal.SIGKILL)  # mid-fetch
        self.m.proc.wait()
        at_kill = len(self.inbox())
        print("delivered when killed: %d of %d" % (at_kill, N))
        self.assertLess(at_kill, N, "the kill came after the fetch: nothing was tested")
        self.m.start()
        counts = sinklib.wait_for(lambda: (lambda c: c if len(c) >= N else None)(self.inbox()), 240,
                                  "all messages after the restart")
        time.sleep(3)  # nothing more may come
        counts = self.inbox()
        self.assertEqual(sorted(counts), list(range(N)))
        # One repeat may come from the fetch in flight (delivered to the queue, not yet in the
        # state file) and one from the queue's delivery in flight (in the Maildir, not yet
        # removed from the queue): nothing else.
        self.assertLessEqual(sum(v - 1 for v in counts.values()), 2, "duplicates beyond the ones in flight")
        remote = len(os.listdir(os.path.join(self.dir, "remote", "Maildir", "cur"))) + \
            len(os.listdir(os.path.join(self.dir, "remote", "Maildir", "new")))
        self.assertEqual(remote, N)  # keep = true

    def test_pop3_delete_mode_empties_the_remote_mailbox(self):
        self.start_dovecot(50)
        self.m = self.mailroomd("pop3", self.pop3_port, False)
        counts = sinklib.wait_for(lambda: (lambda c: c if len(c) >= 50 else None)(self.inbox()), 60, "50 messages")
        remote_dir = os.path.join(self.dir, "remote", "Maildir")
        sinklib.wait_for(lambda: not os.listdir(remote_dir + "/cur") and not os.listdir(remote_dir + "/new"), 30,
                         "the remote mailbox to be emptied")
        time.sleep(2)
        counts = self.inbox()
        self.assertEqual(sorted(counts), list(range(50)))
        self.assertEqual(max(counts.values()), 1)

    def test_mailroomctl_fetch_add_list_run(self):
        self.start_dovecot(20)
        self.m = sinklib.Mailroomd(("mx",), extra_config="[outbound]\nenabled = false\n")
        ctl = [os.path.join(sinklib.BIN_DIR, "mailroomctl"), "--config", self.m.config, "fetch"]
        r = subprocess.run(ctl + ["add", "remote", "--protocol", "pop3", "--host", "127.0.0.1", "--port",
                                  str(self.pop3_port), "--tls", "none", "--user", "remote", "--to", "demo@example.test"],
                           input=b"rpass\n", capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(ctl + ["list"], capture_output=True, timeout=30)
        self.assertIn(b"remote  pop3://remote@127.0.0.1:%d" % self.pop3_port, r.stdout)
        self.assertIn(b"0 remembered", r.stdout)
        r = subprocess.run(ctl + ["run", "remote"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"remote: fetched 20, already had 0", r.stdout)
        # Into the queue: the running mailroomd delivers it.
        counts = sinklib.wait_for(lambda: (lambda c: c if len(c) >= 20 else None)(self.inbox()), 30, "20 messages")
        self.assertEqual(sorted(counts), list(range(20)))
        r = subprocess.run(ctl + ["run"], capture_output=True, timeout=60)
        self.assertIn(b"remote: fetched 0, already had 20", r.stdout)
        r = subprocess.run(ctl + ["list"], capture_output=True, timeout=30)
        self.assertIn(b"20 remembered", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
