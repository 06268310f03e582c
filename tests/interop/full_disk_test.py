"""Bad input for mailroomd: a full disk and corrupt queue files.

Full disk: mailroomd runs with its data_dir (queue and Maildirs) on a 4 MiB tmpfs, mounted in a
private mount namespace (unshare; as root, else in a user namespace) so nothing is left on the
host. A 2 MiB filler file takes half of it. smtplib sends until the disk is full, and the test
checks that every refusal is 452 4.3.1 (temporary, with an enhanced status code), never a 5xx and
never a 250 for a message that is not completely on disk; that every 250 is in a Maildir, whole,
or still in the queue; that no partial file appears in new/ or cur/; that the server keeps
answering while full; and that after the filler is deleted new mail is accepted and the deferred
mail is delivered. Exits 77 (skipped) when no mount namespace can be made.

Corrupt queue files: garbage in queue/incoming/ before the start is moved to queue/corrupt/ and
logged, and mailroomd goes on delivering the good mail next to it.
"""
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

import sinklib
from spool_test import parse_queue_file

BIN = os.path.join(sinklib.BIN_DIR, "mailroomd")
CTL = os.path.join(sinklib.BIN_DIR, "mailroomctl")
DISK_KIB = 4096
FILLER_KIB = 2048
BIG_KIB = 1200  # fits in the queue once, but not a second time in the Maildir next to it


def mount_namespace(probe_dir):
    """The unshare prefix that can mount a tmpfs in a private mount namespace, and the nsenter one
    that joins it later; (None, reason) when this machine allows neither."""
    variants = []
    if os.geteuid() == 0:
        variants.append((["unshare", "--mount", "--propagation", "private"], ["nsenter", "-m"]))
    variants.append((["unshare", "-r", "--mount", "--propagation", "private"],
                     ["nsenter", "-U", "-m", "--preserve-credentials"]))
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return None, "unshare/nsenter (util-linux) not installed"
    errors = []
    for unshare, nsenter in variants:
        r = subprocess.run(unshare + ["sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', probe_dir],
                           capture_output=True, timeout=10)
        if r.returncode == 0:
            return (unshare, nsenter), None
        errors.append("%s: %s" % (" ".join(unshare), r.stderr.decode(errors="replace").strip()))
    return None, "; ".join(errors)


def message(i, size):
    """Message i, about `size` bytes, its number in X-Seq: and at the end."""
    head = (b"From: <sender@remote.example>\r\nTo: <demo@example.test>\r\nSubject: full disk %d\r\n"
            b"X-Seq: %d\r\n\r\n" % (i, i))
    line = b"%06d the quick brown fox fills the small disk, line after line\r\n"
    lines, n = [], 0
    while len(head) + n < size:
        lines.append(line % len(lines))
        n += len(lines[-1])
    return head + b"".join(lines) + b"END %d\r\n" % i


# What mailroomd puts in front of the client's bytes: Return-Path and Delivered-To (the local
# delivery), then the Received: field (folded) of the SMTP server.
ADDED = re.compile(rb"Return-Path: <[^>\r\n]*>\r\nDelivered-To: [^\r\n]*\r\n"
                   rb"Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n")
QUEUE_ADDED = re.compile(rb"Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n")


class Mailroomd:
    """mailroomd with one MX listener and the user demo, its data_dir on a tmpfs of its own when
    `ns` is given (the unshare and nsenter prefixes), else on the host's disk."""

    def __init__(self, ns=None, prepare=None):
        self.dir = tempfile.mkdtemp(prefix="mailroom-disk-")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.ns = ns
        self.port = sinklib.free_port()
        self.config = os.path.join(self.dir, "mailroomd.toml")
        with open(self.config, "w") as f:
            f.write('hostname = "mx.example.test"\ndata_dir = "%s"\nlocal_domains = ["example.test"]\n'
                    'log_level = "info"\n[[listener]]\nkind = "mx"\naddress = "127.0.0.1:%d"\n' % (self.data, self.port))
        self.log = open(os.path.join(self.dir, "log"), "w+")
        if ns:
            # Mount, make the user and the filler, then become mailroomd (same pid: signals reach it).
            script = ('set -e; mount -t tmpfs -o size=%dk,mode=0755 tmpfs "$0"; mkdir -p "$0/mail/demo"; '
                      'head -c %d /dev/zero > "$0/filler"; exec "$@"' % (DISK_KIB, FILLER_KIB * 1024))
            args = ns[0] + ["sh", "-c", script, self.data, BIN, "--config", self.config]
        else:
            os.makedirs(os.path.join(self.data, "mail", "demo"))
            if prepare:
                prepare(self.data)
            args = [BIN, "--config", self.config]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)
        try:
            sinklib.wait_port(self.port, self.proc)
        except RuntimeError:
            self.log.seek(0)
            raise RuntimeError("mailroomd did not start; log:\n" + self.log.read())
        # Inside the namespace, the data_dir is visible to us through /proc/<pid>/root.
        self.root = "/proc/%d/root%s" % (self.proc.pid, self.data) if ns else self.data

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def alive(self):
        return self.proc.poll() is None

    def logged(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def ctl(self, *args):
        prefix = self.ns[1] + ["-t", str(self.proc.pid)] if self.ns else []
        return subprocess.run(prefix + [CTL, "--config", self.config] + list(args), capture_output=True, timeout=20)

    def queue(self, state):
        return sorted(os.listdir(self.path("queue", state)))

    def maildir(self, sub):
        d = self.path("mail", "demo", "Maildir", sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.logged()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)  # the tmpfs went with the namespace
        return self.proc.returncode, log


NS, NS_PROBLEM = None, None


class FullDiskTest(unittest.TestCase):
    def setUp(self):
        if NS is None:
            self.skipTest("cannot mount a tmpfs in a private mount namespace: %s" % NS_PROBLEM)
        self.m = Mailroomd(NS)
        self.sent = {}     # seq -> message bytes, for every message that got 250
        self.refused = []  # (seq, stage, code, text)

    def tearDown(self):
        code, log = self.m.stop()
        self.assertEqual(code, 0, "mailroomd exit status; log:\n" + log[-4000:])

    def send(self, s, i, size, declare_size):
        """One transaction on an open connection; records and returns (stage, code, text)."""
        msg = message(i, size)
        opts = ["SIZE=%d" % len(msg)] if declare_size else []
        code, text = s.mail("sender@remote.example", opts)
        stage = "MAIL"
        if code == 250:
            code, text = s.rcpt("demo@example.test")
            stage = "RCPT"
            self.assertEqual(code, 250, "RCPT refused: %d %r" % (code, text))  # the user exists: never a space check here
            stage = "DATA"
            code, text = s.data(msg)
        if code == 250:
            self.sent[i] = msg
        else:
            self.refused.append((i, stage, code, text))
            s.rset()
        return stage, code, text

    def assert_refusal(self, stage, code, text, what):
        self.assertEqual((code, text[:6]), (452, b"4.3.1 "),
                         "%s: a full disk must be 452 4.3.1 (temporary, enhanced code), got %s %d %r"
                         % (what, stage, code, text))

    def assert_maildir_whole(self):
        """Every file in new/ and cur/ is one message that got 250, complete."""
        seen = {}
        for sub in ("new", "cur"):
            for name in self.m.maildir(sub):
                with open(self.m.path("mail", "demo", "Maildir", sub, name), "rb") as f:
                    data = f.read()
                m = re.search(rb"\r\nX-Seq: (\d+)\r\n", data)
                self.assertIsNotNone(m, "unknown file %s in %s/: %r" % (name, sub, data[:200]))
                i = int(m.group(1))
                self.assertIn(i, self.sent, "message %d was delivered but never got a 250" % i)
                added = ADDED.match(data)
                self.assertIsNotNone(added, "%s: unexpected header block %r" % (name, data[:300]))
                self.assertEqual(data[added.end():], self.sent[i], "message %d damaged or partial in %s/%s" % (i, sub, name))
                seen[i] = seen.get(i, 0) + 1
        return seen

    def queued(self):
        """Sequence numbers of the messages in the queue, each checked to be whole."""
        out = []
        for state in ("incoming", "active", "deferred"):
            for qid in self.m.queue(state):
                try:
                    with open(self.m.path("queue", state, qid), "rb") as f:
                        data = f.read()
                except FileNotFoundError:  # moved on meanwhile
                    continue
                _, body = parse_queue_file(data)
                i = int(re.search(rb"\r\nX-Seq: (\d+)\r\n", body).group(1))
                added = QUEUE_ADDED.match(body)
                self.assertIsNotNone(added)
                self.assertEqual(body[added.end():], self.sent.get(i), "queued message %d is not what got 250" % i)
                out.append(i)
        return out

    def wait_for(self, pred, secs, what):
        deadline = time.time() + secs
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.1)
        self.fail("timed out waiting for %s; log tail:\n%s" % (what, self.m.logged()[-3000:]))

    def test_full_disk_refuses_temporarily_and_recovers(self):
        m = self.m
        rng = random.Random(int(os.environ.get("FULL_DISK_SEED", "3")))
        st = os.statvfs(m.root)
        self.assertLessEqual(st.f_blocks * st.f_frsize, DISK_KIB * 1024, "data_dir is not on the small tmpfs")

        with smtplib.SMTP("127.0.0.1", m.port, timeout=20) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("size"))
            # Larger than the whole disk (and under the 10 MiB limit): with SIZE=, refused at MAIL;
            # without, accepted at MAIL, then the writes fail: refused after the data, not 250.
            self.assert_refusal(*self.send(s, 0, 5 << 20, True), what="SIZE= larger than the free space")
            stage, code, text = self.send(s, 1, 5 << 20, False)
            self.assertEqual(stage, "DATA", "the first 5 MiB message without SIZE= should fail while being written")
            self.assert_refusal(stage, code, text, "ENOSPC while writing the queue file")
            self.assertEqual(s.noop()[0], 250)
            self.assertEqual(m.queue("incoming") + m.queue("active") + m.queue("deferred"), [])
            # Room for the queue file, not for its Maildir copy too: accepted, then the local
            # delivery fails with ENOSPC and must defer, not bounce, hold or strand the message
            # (even the rewritten envelope finds no room).
            stage, code, text = self.send(s, 2, BIG_KIB * 1024, True)
            self.assertEqual(code, 250, "%s %d %r" % (stage, code, text))
        self.wait_for(lambda: m.queue("deferred") and not m.queue("incoming") and not m.queue("active"), 10,
                      "the large message to be deferred")
        self.assertEqual(self.queued(), [2])
        self.assertEqual(m.queue("hold"), [])
        self.assertEqual(m.maildir("new") + m.maildir("tmp"), [])
        self.assertIn("cannot rewrite the queue file", m.logged())

        # Fill the disk with messages of many sizes, with and without SIZE=, until it stays full.
        # Five transactions per connection: the server hangs up after 20 refusals in one session.
        i, streak = 3, 0
        while streak < 10 and i < 600:
            with smtplib.SMTP("127.0.0.1", m.port, timeout=20) as s:
                s.ehlo("client.example")
                for _ in range(5):
                    stage, code, text = self.send(s, i, rng.choice((2, 8, 20, 40, 64)) * 1024, i % 2 == 0)
                    if code == 250:
                        streak = 0
                    else:
                        self.assert_refusal(stage, code, text, "message %d" % i)
                        self.assertEqual(s.noop()[0], 250)
                        streak += 1
                    i += 1
        self.assertGreaterEqual(streak, 10, "the disk never filled up")
        self.assertTrue(m.alive())

        self.assertGreater(len(self.sent), 10)
        stages = sorted(set(r[1] for r in self.refused))
        self.assertIn("MAIL", stages)
        self.assertIn("DATA", stages)

        # Full: the server still talks, and a message with no SIZE= is refused too.
        with smtplib.SMTP("127.0.0.1", m.port, timeout=20) as s:
            self.assertEqual(s.ehlo("client.example")[0], 250)
            self.assertEqual(s.noop()[0], 250)
            self.assert_refusal(*self.send(s, i, 30 * 1024, False), what="while full")
            i += 1

        # Deliveries that met the full disk are deferred, none left in active/, none held or lost.
        self.wait_for(lambda: not m.queue("incoming") and not m.queue("active"), 15, "the queue to settle")
        self.assertEqual(m.queue("hold"), [], "a full disk must defer, not hold")
        self.assertEqual(m.queue("corrupt"), [])
        delivered = self.assert_maildir_whole()
        waiting = self.queued()
        missing = sorted(set(self.sent) - set(delivered) - set(waiting))
        self.assertEqual(missing, [], "acknowledged messages neither delivered nor queued")
        self.assertEqual(m.maildir("tmp"), [], "partial Maildir files left in tmp/")
        self.assertEqual(os.listdir(m.path("queue", "tmp")), [], "partial queue files left in tmp/")
        self.assertTrue(m.alive())
        deferred_while_full = len(m.queue("deferred"))
        self.assertIn(2, waiting)

        # Space again: new mail is accepted at once, and the deferred mail goes out once due.
        os.unlink(m.path("filler"))
        with smtplib.SMTP("127.0.0.1", m.port, timeout=20) as s:
            s.ehlo("client.example")
            for k in range(5):
                stage, code, text = self.send(s, i, 4 * 1024, k % 2 == 0)
                self.assertEqual(code, 250, "after space was freed: %s %d %r" % (stage, code, text))
                i += 1
        r = m.ctl("queue", "flush")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_for(lambda: not any(m.queue(s) for s in ("incoming", "active", "deferred")), 20,
                      "the deferred mail to be delivered")
        delivered = self.assert_maildir_whole()
        self.assertEqual(sorted(set(self.sent) - set(delivered)), [], "acknowledged messages not delivered")
        self.assertEqual(m.queue("hold") + m.queue("corrupt"), [])
        self.assertEqual(m.maildir("tmp"), [])
        log = m.logged()
        self.assertIn("No space left on device", log)
        print("\n250: %d, refused: %d (%s), deferred while full: %d, duplicates: %d"
              % (len(self.sent), len(self.refused),
                 ", ".join("%s %d" % (st, sum(1 for r in self.refused if r[1] == st)) for st in stages),
                 deferred_while_full, sum(1 for c in delivered.values() if c > 1)), file=sys.stderr)


class CorruptQueueFileTest(unittest.TestCase):
    """No tmpfs needed: the data_dir is on the host's disk."""

    def test_corrupt_files_are_quarantined_and_logged_and_good_mail_flows(self):
        good = message(1, 2000)

        def prepare(data):
            incoming = os.path.join(data, "queue", "incoming")
            os.makedirs(incoming)
            with open(os.path.join(incoming, "garbage"), "wb") as f:
                f.write(bytes(random.Random(1).randrange(256) for _ in range(3000)))
            # A queue file cut short: a valid envelope, a body, no footer.
            with open(os.path.join(incoming, "0000000000001000000001"), "wb") as f:
                f.write(b"MAILROOM-QUEUE 1\nI 22:0000000000001000000001\nT 1:0\nF 0:\nR 17:demo@example.test\n"
                        b"E 0:\nSubject: cut\r\n\r\nthe end is miss")

        m = Mailroomd(prepare=prepare)
        try:
            with smtplib.SMTP("127.0.0.1", m.port, timeout=20) as s:
                s.sendmail("sender@remote.example", ["demo@example.test"], good)
            deadline = time.time() + 10
            while time.time() < deadline and not m.maildir("new"):
                time.sleep(0.05)
            self.assertEqual(len(m.maildir("new")), 1)
            with open(m.path("mail", "demo", "Maildir", "new", m.maildir("new")[0]), "rb") as f:
                self.assertTrue(f.read().endswith(good))
            time.sleep(0.3)  # quarantined for good: not picked up again
            self.assertEqual(m.queue("corrupt"), ["0000000000001000000001", "garbage"])
            for state in ("incoming", "active", "deferred", "hold"):
                self.assertEqual(m.queue(state), [], state)
            self.assertTrue(m.alive())
        finally:
            code, log = m.stop()
        self.assertEqual(code, 0, log)
        quarantined = [l for l in log.splitlines() if "corrupt queue file" in l]
        self.assertEqual(len(quarantined), 2, log)
        self.assertTrue(any("queue_id=garbage" in l and "envelope does not parse" in l for l in quarantined), log)
        self.assertTrue(any("queue_id=0000000000001000000001" in l and "truncated" in l for l in quarantined), log)


def main():
    global NS, NS_PROBLEM
    probe = tempfile.mkdtemp(prefix="mailroom-ns-probe-")
    try:
        NS, NS_PROBLEM = mount_namespace(probe)
    finally:
        os.rmdir(probe)
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    if NS is None:
        print("SKIP: the full-disk test needs a private mount namespace (root, or unprivileged user "
              "namespaces): %s" % NS_PROBLEM, file=sys.stderr)
        sys.exit(77)
    sys.exit(0)


if __name__ == "__main__":
    main()
