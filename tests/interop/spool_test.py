"""smtplib and swaks against examples/spool_receiver: mail for local domains lands, durably, in
the queue's incoming/ directory in the documented record format; relaying is refused."""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest

import sinklib


def read(path):
    with open(path, "rb") as f:
        return f.read()


def parse_queue_file(data):
    """The record format of include/mailroom/queue/spool.hpp, read independently of the C++ code."""
    assert data.startswith(b"MAILROOM-QUEUE 1\n"), data[:40]
    pos, records = len(b"MAILROOM-QUEUE 1\n"), []
    while True:
        m = re.compile(rb"(.) (\d+):").match(data, pos)
        assert m, data[pos:pos + 40]
        tag, n = m.group(1).decode(), int(m.group(2))
        value = data[m.end():m.end() + n]
        assert data[m.end() + n:m.end() + n + 1] == b"\n"
        pos = m.end() + n + 1
        if tag == "E":
            break
        records.append((tag, value))
    footer = re.compile(rb"\nMAILROOM-QUEUE-END (\d{20})\n$").search(data)
    assert footer, data[-60:]
    body = data[pos:footer.start()]
    assert len(body) == int(footer.group(1))
    return records, body


class SpoolReceiverTest(unittest.TestCase):
    extra = []

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mailroom-spool-")
        self.spool = os.path.join(self.dir, "queue")
        self.port = sinklib.free_port()
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = subprocess.Popen([os.path.join(sinklib.BIN_DIR, "spool_receiver"), "--listen",
                                      "127.0.0.1:%d" % self.port, "--spool", self.spool, "--local-domain",
                                      "example.org", "--hostname", "mx.example.org", "--user", "alice:pw", "--self-signed"]
                                     + list(self.extra),
                                     stdout=subprocess.PIPE, stderr=self.log)
        sinklib.wait_port(self.port, self.proc)

    def tearDown(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=15)
        self.assertEqual(self.proc.returncode, 0)
        self.assertEqual(out, b"")
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def incoming(self):
        d = os.path.join(self.spool, "incoming")
        return [read(os.path.join(d, f)) for f in sorted(os.listdir(d))]

    def test_local_mail_is_queued_with_envelope_and_received_line(self):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.ehlo("client.example")
            s.sendmail("sender@remote.example", ["u1@example.org", "u2@EXAMPLE.ORG"],
                       b"Subject: queued\r\n\r\nbody line\r\n.dotted\r\n",
                       mail_options=["BODY=8BITMIME", "ENVID=abc"], rcpt_options=["NOTIFY=FAILURE"])
        files = self.incoming()
        self.assertEqual(len(files), 1)
        records, body = parse_queue_file(files[0])
        rec = {}
        for tag, value in records:
            rec.setdefault(tag, []).append(value)
        self.assertEqual(rec["F"], [b"sender@remote.example"])
        self.assertEqual(rec["R"], [b"u1@example.org", b"u2@EXAMPLE.ORG"])
        self.assertEqual(rec["N"], [b"4", b"4"])  # FAILURE, per recipient
        self.assertIn(b"BODY=8BITMIME", rec["P"])
        self.assertIn(b"ENVID=abc", rec["P"])
        self.assertEqual(rec["H"], [b"client.example"])
        self.assertEqual(rec["X"], [b"ESMTP"])
        self.assertTrue(body.startswith(b"Received: from client.example ([127.0.0.1])\r\n\tby mx.example.org"))
        self.assertTrue(body.endswith(b"Subject: queued\r\n\r\nbody line\r\n.dotted\r\n"))
        self.assertEqual(os.listdir(os.path.join(self.spool, "tmp")), [])

    def test_relay_is_refused_and_nothing_is_queued(self):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.ehlo()
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("a@remote.example", ["victim@elsewhere.example"], b"Subject: x\r\n\r\nx\r\n")
            self.assertEqual(cm.exception.recipients["victim@elsewhere.example"][0], 554)
        self.assertEqual(self.incoming(), [])

    def test_authenticated_users_may_relay(self):
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.starttls(context=ctx)
            s.login("alice", "pw")
            s.sendmail("alice@example.org", ["friend@elsewhere.example"], b"Subject: out\r\n\r\nhi\r\n")
        records, body = parse_queue_file(self.incoming()[0])
        rec = dict(records)
        self.assertEqual(rec["R"], b"friend@elsewhere.example")
        self.assertEqual(rec["X"], b"ESMTPSA")
        self.assertEqual(rec["A"], b"alice")
        self.assertIn(b"with ESMTPSA (TLSv1.2 ", body)


class LocalDeliveryTest(SpoolReceiverTest):
    """smtplib -> SMTP -> queue -> queue manager -> per-user Maildir."""
    def setUp(self):
        self.users = tempfile.mkdtemp(prefix="mailroom-users-")
        for user in ("u1", "u2"):
            os.makedirs(os.path.join(self.users, user))
        self.extra = ["--deliver-to", self.users]
        super().setUp()

    def test_delivered_into_each_users_maildir(self):
        import time
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.sendmail("a@remote.example", ["u1@example.org", "u2+tag@example.org"], b"Subject: local\r\n\r\nhi\r\n")
            with self.assertRaises(smtplib.SMTPRecipientsRefused):
                s.sendmail("a@remote.example", ["x@elsewhere.example"], b"Subject: relay\r\n\r\nno\r\n")
        deadline = time.time() + 10
        found = {}
        while time.time() < deadline and len(found) < 2:
            for user in ("u1", "u2"):
                new = os.path.join(self.users, user, "Maildir", "new")
                if os.path.isdir(new) and os.listdir(new):
                    found[user] = read(os.path.join(new, os.listdir(new)[0]))
            time.sleep(0.05)
        self.assertEqual(sorted(found), ["u1", "u2"])
        self.assertTrue(found["u2"].startswith(b"Return-Path: <a@remote.example>\r\nDelivered-To: u2+tag@example.org\r\n"))
        self.assertIn(b"Received: from ", found["u1"])
        self.assertTrue(found["u1"].endswith(b"Subject: local\r\n\r\nhi\r\n"))
        for state in ("incoming", "active", "deferred", "hold"):  # the queue is empty again
            self.assertEqual(os.listdir(os.path.join(self.spool, state)), [], state)

    # The parent's tests assume nothing drains incoming/.
    test_local_mail_is_queued_with_envelope_and_received_line = None
    test_authenticated_users_may_relay = None

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.users, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
