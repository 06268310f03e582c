"""Python's smtplib (a client nobody here wrote) against smtp_sink."""
import email.message
import smtplib
import socket
import ssl
import sys

import sinklib
from sinklib import PASSWORD, USER


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the sink's certificate is self-signed
    return ctx


def make_message(subject="interop", body="Hello from smtplib.\n.leading dot\n"):
    m = email.message.EmailMessage()
    m["From"] = "sender@example.org"
    m["To"] = "rcpt@example.net"
    m["Subject"] = subject
    m.set_content(body)
    return m


def start_data(test, sock):
    """HELO, MAIL, RCPT and DATA one at a time on a raw socket; returns its reader after the 354."""
    f = sock.makefile("rb")
    test.assertTrue(f.readline().startswith(b"220"))
    for cmd in (b"HELO x", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>"):
        sock.sendall(cmd + b"\r\n")
        test.assertTrue(f.readline().startswith(b"250"), cmd)
    sock.sendall(b"DATA\r\n")
    test.assertTrue(f.readline().startswith(b"354"))
    return f


class SmtplibTest(sinklib.SinkTest):
    def test_plain_delivery(self):
        with smtplib.SMTP("127.0.0.1", self.sink.port, timeout=10) as s:
            code, caps = s.ehlo("client.example")
            self.assertEqual(code, 250)
            for kw in (b"PIPELINING", b"SIZE", b"STARTTLS", b"8BITMIME", b"SMTPUTF8", b"CHUNKING", b"DSN",
                       b"ENHANCEDSTATUSCODES"):
                self.assertIn(kw, caps)
            self.assertNotIn(b"AUTH", caps)  # never before TLS
            refused = s.sendmail("sender@example.org", ["rcpt@example.net", "two@example.net"],
                                 make_message().as_bytes())
            self.assertEqual(refused, {})
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 1)
        # smtplib sends bytes with bare LF line ends; the default policy stores CRLF.
        self.assertIn(b"Subject: interop\r\n", msgs[0])
        self.assertNotIn(b"\n", msgs[0].replace(b"\r\n", b""))
        self.assertIn(b"\r\n.leading dot\r\n", msgs[0])
        self.assertEqual(self.sink.leftovers_in_tmp(), [])

    def test_starttls_and_auth_plain(self):
        with smtplib.SMTP("127.0.0.1", self.sink.port, timeout=10) as s:
            s.ehlo()
            code, _ = s.starttls(context=tls_context())
            self.assertEqual(code, 220)
            code, caps = s.ehlo()
            self.assertIn(b"AUTH", caps)
            self.assertNotIn(b"STARTTLS", caps)
            s.login(USER, PASSWORD, initial_response_ok=True)  # smtplib picks PLAIN first among ours
            s.send_message(make_message("over tls"))
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"Subject: over tls", msgs[0])

    def test_auth_login_and_failure(self):
        with smtplib.SMTP("127.0.0.1", self.sink.port, timeout=10) as s:
            s.starttls(context=tls_context())
            s.ehlo()
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                s.auth("LOGIN", lambda challenge=None: USER if challenge == b"Username:" else "wrong", initial_response_ok=False)
            self.assertEqual(cm.exception.smtp_code, 535)
        with smtplib.SMTP("127.0.0.1", self.sink.port, timeout=10) as s:
            s.starttls(context=tls_context())
            s.ehlo()
            s.user, s.password = USER, PASSWORD
            code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            self.assertEqual(code, 235)
            s.sendmail("a@example.org", ["b@example.org"], b"Subject: login\r\n\r\nok\r\n")
        self.assertEqual(len(self.sink.messages()), 1)

    def test_implicit_tls(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.sink.tls_port, timeout=10, context=tls_context()) as s:
            s.login(USER, PASSWORD)
            s.sendmail("a@example.org", ["b@example.org"], b"Subject: smtps\r\n\r\nimplicit\r\n")
        self.assertIn(b"implicit", self.sink.messages()[0])

    def test_smtputf8(self):
        with smtplib.SMTP("127.0.0.1", self.sink.port, timeout=10) as s:
            s.ehlo()
            body = "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße\r\n".encode()
            s.sendmail("jörg@bücher.example", ["zoë@example.org"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertIn("Grüße".encode(), self.sink.messages()[0])

    def test_size_limit_and_rejections(self):
        with smtplib.SMTP("127.0.0.1", self.sink.port, timeout=10) as s:
            s.ehlo()
            self.assertEqual(s.mail("a@example.org", ["SIZE=999999999"])[0], 552)
            s.rset()
            self.assertEqual(s.docmd("MAIL FROM:<a@example.org> FOO=BAR")[0], 555)
            self.assertEqual(s.docmd("VRFY root")[0], 502)
            self.assertEqual(s.docmd("DATA")[0], 503)
        self.assertEqual(self.sink.messages(), [])

    def test_bdat_raw_socket(self):
        chunk1 = b"Subject: chunked\r\n\r\nfirst part, "
        chunk2 = b"second part\r\n"
        with socket.create_connection(("127.0.0.1", self.sink.port), timeout=10) as sock:
            f = sock.makefile("rb")

            def reply():
                lines = []
                while True:
                    line = f.readline()
                    lines.append(line)
                    if len(line) < 4 or line[3:4] != b"-":
                        return b"".join(lines)

            self.assertTrue(reply().startswith(b"220"))
            sock.sendall(b"EHLO raw\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
            self.assertIn(b"CHUNKING", reply())
            self.assertTrue(reply().startswith(b"250"))
            self.assertTrue(reply().startswith(b"250"))
            sock.sendall(b"BDAT %d\r\n" % len(chunk1) + chunk1 + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
            self.assertTrue(reply().startswith(b"250 2.0.0 %d octets" % len(chunk1)))
            self.assertTrue(reply().startswith(b"250 2.0.0 Ok: queued"))
            sock.sendall(b"QUIT\r\n")
            self.assertTrue(reply().startswith(b"221"))
        self.assertEqual(self.sink.messages(), [chunk1 + chunk2])

class LmtpTest(sinklib.SinkTest):
    def test_smtplib_lmtp(self):
        with smtplib.LMTP("127.0.0.1", self.sink.lmtp_port, timeout=10) as s:
            code, caps = s.ehlo()  # smtplib.LMTP sends LHLO
            self.assertEqual(code, 250)
            self.assertIn(b"PIPELINING", caps)
            self.assertEqual(s.sendmail("a@example.org", ["b@example.org"], b"Subject: lmtp\r\n\r\nvia LMTP\r\n"), {})
        self.assertIn(b"via LMTP", self.sink.messages()[0])

    def test_ehlo_is_refused_on_lmtp(self):
        with socket.create_connection(("127.0.0.1", self.sink.lmtp_port), timeout=10) as sock:
            f = sock.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 mx.test LMTP"))
            sock.sendall(b"EHLO x\r\n")
            self.assertTrue(f.readline().startswith(b"500"))


class RejectTest(sinklib.SinkTest):
    extra_args = ("--bare-lf", "reject")

    def test_smuggling_yields_no_message(self):
        for seq in (b"\n.\n", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n"):
            with self.subTest(seq=seq), socket.create_connection(("127.0.0.1", self.sink.port), timeout=10) as sock:
                f = start_data(self, sock)
                sock.sendall(b"Subject: a\r\n\r\nx" + seq + b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<v@example.org>\r\n"
                             b"DATA\r\nSubject: smuggled\r\n\r\ny\r\n.\r\n")
                self.assertTrue(f.readline().startswith(b"550 5.6.0"))
                sock.sendall(b"QUIT\r\n")
                self.assertTrue(f.readline().startswith(b"221"))
        self.assertEqual(self.sink.messages(), [])


class NormalizeTest(sinklib.SinkTest):
    def test_smuggling_under_normalize_is_one_message(self):
        with socket.create_connection(("127.0.0.1", self.sink.port), timeout=10) as sock:
            f = start_data(self, sock)
            sock.sendall(b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@example.org>\r\nDATA\r\ny\r\n.\r\n")
            self.assertTrue(f.readline().startswith(b"250"))
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"x\r\n.\r\nMAIL FROM:<evil@example.org>\r\n", msgs[0])


if __name__ == "__main__":
    sinklib.main()
