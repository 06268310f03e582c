"""Never lose mail on the way out: SIGKILL examples/submission_relay at random moments while it
relays to Postfix's smtp-sink, restart it, and check that every message that got a 250 reaches
the sink at least once and at most twice (a kill between the remote 250 and the queue clean-up
repeats a delivery; nothing else may)."""
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
import time
import unittest

import sinklib

N_MESSAGES = int(os.environ.get("CRASH_MESSAGES", "300"))
N_KILLS = int(os.environ.get("CRASH_KILLS", "8"))


def body(i):
    return (b"Subject: out %d\r\nX-Seq: %d\r\n\r\n" % (i, i)) + b"filler line\r\n" * 40 + b"END %d\r\n" % i


class OutboundCrashTest(unittest.TestCase):
    def setUp(self):
        sinklib.require_tool("smtp-sink")
        self.dir = tempfile.mkdtemp(prefix="mailroom-outcrash-")
        os.chmod(self.dir, 0o755)
        self.dump = os.path.join(self.dir, "dump")
        os.makedirs(self.dump)
        os.chmod(self.dump, 0o777)
        self.sink_port, self.port = sinklib.free_port(), sinklib.free_port()
        self.sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", self.dump + "/%M.",
                                      "127.0.0.1:%d" % self.sink_port, "50"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sinklib.wait_port(self.sink_port, self.sink)
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = None

    def tearDown(self):
        for p in (self.proc, self.sink):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        self.proc = subprocess.Popen([os.path.join(sinklib.BIN_DIR, "submission_relay"), "--listen",
                                      "127.0.0.1:%d" % self.port, "--spool", os.path.join(self.dir, "queue"),
                                      "--smarthost", "127.0.0.1:%d" % self.sink_port, "--smarthost-tls", "none",
                                      "--trusted", "127.0.0.0/8"],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        sinklib.wait_port(self.port, self.proc)

    def delivered(self):
        counts = {}
        for name in os.listdir(self.dump):
            try:
                with open(os.path.join(self.dump, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for m in re.finditer(rb"X-Seq: (\d+)\r?\n", data):
                counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
        return counts

    def test_kill_during_relay_loses_nothing_acknowledged(self):
        rng = random.Random(int(os.environ.get("CRASH_SEED", "11")))
        self.start()
        acked = set()
        done = threading.Event()

        def sender():
            i = 0
            while i < N_MESSAGES:
                try:
                    with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
                        while i < N_MESSAGES:
                            s.sendmail("scanner@lan.example", ["someone@remote.example"], body(i))
                            acked.add(i)
                            i += 1
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.05)  # killed mid-session: that message was not acknowledged
            done.set()

        t = threading.Thread(target=sender)
        t.start()
        for _ in range(N_KILLS):
            time.sleep(rng.uniform(0.05, 0.6))
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.start()
        t.join(timeout=120)
        self.assertTrue(done.is_set())
        counts = sinklib.wait_for(lambda: (lambda c: c if acked <= set(c) else None)(self.delivered()), 60,
                                  "every acknowledged message at the sink")
        self.assertTrue(acked <= set(counts), sorted(acked - set(counts))[:10])
        self.assertLessEqual(max(counts.values()), 2, {k: v for k, v in counts.items() if v > 2})
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=20), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
