"""The retrieval agent against a real Dovecot (IMAP and POP3 on loopback, a passwd file, a Maildir
this test fills): mailroomd's [[fetch]] pulls 1,000 messages into the demo user's INBOX, is
SIGKILLed part-way and restarted, and every message arrives (at most one repeat from the fetch
and one from the queue delivery in flight at the kill); POP3 in delete mode leaves the remote mailbox empty."""
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
ssl = no
disable_plaintext_auth = no
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
    port = 0
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

    def start_dovecot(self, n):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="dovecot-fetch-")
        d = self.dir
        os.chmod(d, 0o755)
        nobody = pwd.getpwnam("nobody")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(d, "remote", "Maildir", sub))
        for i in range(n):
            with open(os.path.join(d, "remote", "Maildir", "new", "%d.M%dP1.remote" % (1700000000 + i, i)), "wb") as f:
                f.write(body(i))
        for root, dirs, files in os.walk(os.path.join(d, "remote")):
            for x in dirs + files:
                os.chown(os.path.join(root, x), nobody.pw_uid, nobody.pw_gid)
        os.chown(os.path.join(d, "remote"), nobody.pw_uid, nobody.pw_gid)
        with open(d + "/remote-passwd", "w") as f:
            f.write("remote:{PLAIN}rpass\n")
        os.makedirs(os.path.join(d, "dovecot", "run"))
        os.makedirs(os.path.join(d, "dovecot", "state"))
        self.conf = os.path.join(d, "dovecot", "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=d, uid=nobody.pw_uid, gid=nobody.pw_gid, imap=self.imap_port,
                                        pop3=self.pop3_port))
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

    def mailroomd(self, protocol, port, keep):
        fetch = ('[[fetch]]\nid = "remote-%s"\nprotocol = "%s"\nhost = "127.0.0.1"\nport = %d\ntls = "none"\n'
                 'user = "remote"\npassword = "rpass"\nkeep = %s\ndeliver_to = "demo@example.test"\ninterval = 1\n'
                 % (protocol, protocol, port, "true" if keep else "false"))
        return sinklib.Mailroomd(("mx",), extra_config="[outbound]\nenabled = false\n" + fetch)

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
