"""Outbound delivery end to end: mailroomd submits to remote domains found through a real DNS
server (dnsmasq) and delivers to a real Postfix (primary MX, STARTTLS) or a second mailroomd
(secondary MX, smarthost). DSNs come back to the local sender and are read with Python's email
package. Runs as root (Postfix); skipped when dnsmasq or postfix is missing."""
import email
import email.policy
import os
import shutil
import smtplib
import subprocess
import time
import unittest

import sinklib

MX_PORT = sinklib.free_port()  # every MX host listens on this port, on its own loopback address
PASS = "demo"


class OutboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sinklib.require_tool("dnsmasq")
        sinklib.require_tool("postfix")
        if os.geteuid() != 0:
            print("SKIP: Postfix needs root")
            raise SystemExit(77)
        cls.dns = sinklib.Dnsmasq([
            "local=/remote.test/", "local=/nullmx.test/", "local=/down.test/", "local=/eight.test/",
            "mx-host=remote.test,mx1.remote.test,10", "mx-host=remote.test,mx2.remote.test,20",
            "host-record=mx1.remote.test,127.0.0.2", "host-record=mx2.remote.test,127.0.0.3",
            "mx-host=nullmx.test,.,0", "host-record=nullmx.test,127.0.0.9",
            "mx-host=down.test,mx.down.test,10", "host-record=mx.down.test,127.0.0.5",
            "mx-host=eight.test,mx.eight.test,10", "host-record=mx.eight.test,127.0.0.4",
        ])
        cls.postfix = sinklib.Postfix("127.0.0.2:%d" % MX_PORT, "remote.test", ["u1", "u2", "demo"])
        # The secondary MX: another mailroomd that takes remote.test's mail itself.
        cls.secondary = sinklib.Mailroomd(("mx", "submission"), domain="remote.test",
                                          addresses={"mx": "127.0.0.3:%d" % MX_PORT}, hostname="mx2.remote.test",
                                          extra_config='[outbound]\nenabled = false\n')
        # Postfix's smtp-sink without 8BITMIME for eight.test.
        cls.sink_dir = cls.postfix.dir + "/sink"
        os.makedirs(cls.sink_dir)
        cls.sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-8", "-d", cls.sink_dir + "/%M.",
                                     "127.0.0.4:%d" % MX_PORT, "10"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sinklib.wait_port(MX_PORT, cls.sink, host="127.0.0.4")

    @classmethod
    def tearDownClass(cls):
        cls.sink.terminate()
        cls.sink.wait()
        cls.secondary.close()
        cls.postfix.close()
        cls.dns.close()

    def sender(self, extra=""):
        out = ('[outbound]\ndns_servers = ["127.0.0.1:%d"]\nmx_port = %d\n' % (self.dns.port, MX_PORT)) + extra
        return sinklib.Mailroomd(("mx", "submission"), extra_config=out)

    def submit(self, m, to, body, mail_options=()):
        with smtplib.SMTP("127.0.0.1", m.ports["submission"], timeout=20) as s:
            s.starttls(context=sinklib.insecure_tls())
            s.login(m.USER, PASS)
            s.sendmail(m.USER, to, body, mail_options=list(mail_options))

    def local_messages(self, m):
        new = os.path.join(m.dir, "mail", "demo", "Maildir", "new")
        if not os.path.isdir(new):
            return []
        out = []
        for n in sorted(os.listdir(new)):
            with open(os.path.join(new, n), "rb") as f:
                out.append(f.read())
        return out

    def dsn(self, m, secs=30):
        raw = sinklib.wait_for(lambda: self.local_messages(m), secs, "a DSN in the sender's INBOX")[-1]
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        parts = list(msg.iter_parts())
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        return msg, parts

    def test_delivery_to_postfix_over_starttls_keeps_dot_lines(self):
        m = self.sender()
        try:
            body = (b"From: demo@example.test\r\nTo: u1@remote.test\r\nSubject: dots\r\n\r\n"
                    b".leading dot\r\n..two dots\r\n.\r\nlast line\r\n")
            self.submit(m, ["u1@remote.test"], body)
            got = sinklib.wait_for(lambda: self.postfix.messages("u1"), 30, "Postfix to store the message")
            self.assertIn(b".leading dot\n..two dots\n.\nlast line\n", got[0].replace(b"\r\n", b"\n"))
            self.assertIn(b"ESMTPS", got[0])  # Postfix's Received: line: the hop used TLS
        finally:
            self.assertEqual(m.close(), 0)

    def test_refused_recipient_gets_one_dsn_others_delivered(self):
        m = self.sender()
        try:
            before = len(self.postfix.messages("u2"))
            self.submit(m, ["u2@remote.test", "nobody@remote.test"],
                        b"From: demo@example.test\r\nSubject: half\r\nMessage-ID: <half@example.test>\r\n\r\nhi\r\n")
            sinklib.wait_for(lambda: len(self.postfix.messages("u2")) > before, 30, "u2's copy")
            msg, parts = self.dsn(m)
            status = parts[1].as_string()
            self.assertIn("nobody@remote.test", status)
            self.assertIn("Action: failed", status)
            self.assertIn("Status: 5.1.1", status)
            self.assertNotIn("u2@remote.test", status)
            self.assertIn("<half@example.test>", parts[2].as_string())
        finally:
            self.assertEqual(m.close(), 0)

    def test_null_mx_bounces_at_once(self):
        m = self.sender()
        try:
            self.submit(m, ["x@nullmx.test"], b"Subject: nowhere\r\n\r\nx\r\n")
            msg, parts = self.dsn(m)
            self.assertIn("Status: 5.1.10", parts[1].as_string())
        finally:
            self.assertEqual(m.close(), 0)

    def test_eight_bit_body_to_a_server_without_8bitmime_bounces(self):
        m = self.sender()
        try:
            self.submit(m, ["x@eight.test"], "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode(), ["BODY=8BITMIME"])
            msg, parts = self.dsn(m)
            self.assertIn("Status: 5.6.3", parts[1].as_string())
        finally:
            self.assertEqual(m.close(), 0)

    def test_primary_down_secondary_takes_it_then_all_down_retried_once(self):
        m = self.sender()
        self.postfix.stop()
        try:
            # demo@remote.test exists on both MX hosts.
            self.submit(m, ["demo@remote.test"], b"Subject: via backup\r\n\r\nsecond MX\r\n")
            got = sinklib.wait_for(lambda: self.local_messages(self.secondary), 30, "the secondary MX to deliver")
            self.assertIn(b"second MX", got[-1])
            # Both MX hosts down: deferred, then delivered once when one is back and the queue is flushed.
            self.secondary.stop()
            before = len(self.postfix.messages("demo"))
            self.submit(m, ["demo@remote.test"], b"Subject: later\r\n\r\nretried\r\n")
            time.sleep(3)
            self.postfix.start()
            ctl = os.path.join(sinklib.BIN_DIR, "mailroomctl")
            subprocess.run([ctl, "--config", m.config, "queue", "flush"], check=True, capture_output=True)
            sinklib.wait_for(lambda: len(self.postfix.messages("demo")) > before, 60, "the retried message")
            time.sleep(2)
            self.assertEqual(sum(b"retried" in x for x in self.postfix.messages("demo")), 1)
        finally:
            if not self._port_open("127.0.0.2"):
                self.postfix.start()
            if self.secondary.proc.poll() is not None:
                self.secondary.start()
            self.assertEqual(m.close(), 0)

    def test_smarthost_with_auth(self):
        relay = '\nrelayhost = "127.0.0.1:%d"\nrelay_tls = "required"\nrelay_user = "%s"\nrelay_password = "%s"\n' % (
            self.secondary.ports["submission"], self.secondary.USER, PASS)
        m = self.sender(relay)
        try:
            before = len(self.local_messages(self.secondary))
            self.submit(m, ["demo@remote.test"], b"Subject: smarthost\r\n\r\nthrough the relay\r\n")
            got = sinklib.wait_for(lambda: len(self.local_messages(self.secondary)) > before and
                                   self.local_messages(self.secondary), 30, "the smarthost to deliver")
            self.assertIn(b"through the relay", got[-1])
            self.assertIn(b"ESMTPSA", got[-1])  # mailroomd's Received: line: TLS and AUTH
        finally:
            self.assertEqual(m.close(), 0)

    def _port_open(self, host):
        import socket
        try:
            with socket.create_connection((host, MX_PORT), timeout=0.5):
                return True
        except OSError:
            return False


if __name__ == "__main__":
    unittest.main(verbosity=2)
