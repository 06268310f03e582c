"""Never lose mail: SIGKILL spool_receiver (SMTP -> queue -> Maildir) at random moments while
smtplib sends, restart it, and check that every message that got a 250 is delivered once (twice
only if the kill hit between delivery and queue clean-up), and that no delivered file is partial."""
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import sinklib

N_MESSAGES = int(os.environ.get("CRASH_MESSAGES", "600"))
N_KILLS = int(os.environ.get("CRASH_KILLS", "10"))


def body(i):
    return (b"Subject: crash %d\r\nX-Seq: %d\r\n\r\n" % (i, i)) + b"filler line\r\n" * 40 + b"END %d\r\n" % i


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mailroom-crash-")
        self.spool = os.path.join(self.dir, "queue")
        self.users = os.path.join(self.dir, "mail")
        os.makedirs(os.path.join(self.users, "u1"))
        self.port = sinklib.free_port()
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        self.proc = subprocess.Popen([os.path.join(sinklib.BIN_DIR, "spool_receiver"), "--listen",
                                      "127.0.0.1:%d" % self.port, "--spool", self.spool, "--local-domain",
                                      "example.org", "--deliver-to", self.users],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        sinklib.wait_port(self.port, self.proc)

    def test_kill_at_random_points_loses_nothing_acknowledged(self):
        rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
        self.start()
        acked = set()
        done = threading.Event()

        def sender():
            i = 0
            while i < N_MESSAGES:
                try:
                    with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
                        while i < N_MESSAGES:
                            s.sendmail("a@remote.example", ["u1@example.org"], body(i))
                            acked.add(i)  # only after the 250
                            i += 1
                except (OSError, smtplib.SMTPException):
                    i += 1  # the outcome of message i is unknown; move on
                    time.sleep(0.02)
            done.set()

        t = threading.Thread(target=sender)
        t.start()
        kills = 0
        while not done.is_set() and kills < N_KILLS:
            time.sleep(rng.uniform(0.1, 0.5))
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            kills += 1
            self.start()
        t.join(timeout=120)
        self.assertTrue(done.is_set(), "sender did not finish")
        self.assertGreaterEqual(kills, 1)

        # Let the restarted server drain the queue.
        deadline = time.time() + 60
        def queued():
            return sum(len(os.listdir(os.path.join(self.spool, s))) for s in ("incoming", "active", "deferred"))
        while time.time() < deadline and queued():
            time.sleep(0.1)
        self.assertEqual(queued(), 0, "queue did not drain")
        self.assertEqual(os.listdir(os.path.join(self.spool, "hold")), [])
        self.assertEqual(os.listdir(os.path.join(self.spool, "corrupt")), [])

        counts = {}
        new = os.path.join(self.users, "u1", "Maildir", "new")
        for name in os.listdir(new):
            with open(os.path.join(new, name), "rb") as f:
                data = f.read()
            m = re.search(rb"\r\nX-Seq: (\d+)\r\n", data)
            self.assertIsNotNone(m, name)
            i = int(m.group(1))
            self.assertTrue(data.endswith(body(i)), "partial or damaged message %d in %s" % (i, name))
            counts[i] = counts.get(i, 0) + 1
        lost = sorted(i for i in acked if i not in counts)
        self.assertEqual(lost, [], "acknowledged messages lost")
        self.assertTrue(all(c <= 2 for c in counts.values()), counts)
        dups = sum(1 for c in counts.values() if c == 2)
        print("messages acknowledged: %d, delivered: %d, duplicates: %d, kills: %d"
              % (len(acked), len(counts), dups, kills))
        self.assertLessEqual(dups, kills, "more duplicates than kills")


if __name__ == "__main__":
    unittest.main(verbosity=2)
