"""mailroomd's filter chains and Sieve end to end, with real peers: Sieve fileinto/imap4flags/vacation
on the MX (the vacation reply leaves through the queue to Postfix's smtp-sink, which records the
envelope); SPF, DKIM and DMARC on the MX chain against a real DNS server (dnsmasq) and messages
signed by dkimpy (Debian's python3-dkim); DKIM signing on the submission chain, verified by dkimpy;
opendkim as a milter in the submission chain, running and stopped (failure policies).
Our Authentication-Results is read back with python3-authres (an RFC 8601 parser) when it is there.
Skipped when smtp-sink (postfix), dnsmasq, openssl or python3-dkim is missing; the milter case
also when opendkim is."""
import base64
import email
import email.policy
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

import sinklib


def _dkim_module():
    """Debian's python3-dkim; when this interpreter (CMake may have found another) lacks it, the
    test re-executes itself under Debian's python3, which has it. None: not installed."""
    try:
        import dkim as module
        return module
    except ImportError:
        pass
    debian = "/usr/bin/python3"
    here = os.path.realpath(sys.executable)
    if "MAILROOM_DKIM_REEXEC" not in os.environ and os.path.exists(debian) and here != os.path.realpath(debian):
        os.execve(debian, [debian] + sys.argv, dict(os.environ, MAILROOM_DKIM_REEXEC="1"))
    return None


dkim = _dkim_module()
try:
    import authres  # Debian's python3-authres: an RFC 8601 parser, to read our header as others will
except ImportError:
    authres = None

import milter_test  # noqa: E402 (its opendkim launcher; imported after the re-exec above)

SMTP_SINK = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)
HOSTNAME = "mx.example.test"
DEMO = "demo@example.test"


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1, dumping each transaction (envelope records, then the
    message) to a file of its own."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mailroom-smtp-sink-")
        self.port = sinklib.free_port()
        args = [SMTP_SINK, "-d", self.dir + "/%M.", "127.0.0.1:%d" % self.port, "10"]
        if os.geteuid() == 0:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            args[1:1] = ["-u", "nobody"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sinklib.wait_port(self.port, self.proc)

    def transactions(self):
        """[(envelope, message)]: envelope {"from": "<...>", "rcpts": ["<...>"]}, message in CRLF
        lines; only dumps that were complete (unchanged for a moment)."""
        def sizes():
            return {n: os.path.getsize(os.path.join(self.dir, n)) for n in os.listdir(self.dir)}
        before = sizes()
        time.sleep(0.2)
        after = sizes()
        out = []
        for name in sorted(n for n in after if before.get(n) == after[n] and after[n] > 0):
            with open(os.path.join(self.dir, name), "rb") as f:
                lines = f.read().split(b"\n")
            env = {"from": None, "rcpts": []}
            i = 0
            while i < len(lines) and lines[i].startswith(b"X-"):
                key, _, value = lines[i].partition(b": ")
                if key == b"X-Mail-Args":
                    env["from"] = value.decode().split()[0]
                elif key == b"X-Rcpt-Args":
                    env["rcpts"].append(value.decode().split()[0])
                i += 1
            out.append((env, b"\r\n".join(lines[i:])))
        return out

    def wait(self, count, secs=20):
        return sinklib.wait_for(lambda: len(self.transactions()) >= count and self.transactions(), secs,
                                "%d message(s) at smtp-sink" % count)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def setUpModule():
    if SMTP_SINK is None:
        print("SKIP: smtp-sink (postfix) is not installed")
        sys.exit(77)
    sinklib.require_tool("dnsmasq")
    sinklib.require_tool("openssl")
    if dkim is None:
        print("SKIP: python3-dkim is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    exe = os.path.join(sinklib.BIN_DIR, "mailroomd")
    if not os.access(exe, os.X_OK):
        raise RuntimeError("no mailroomd at %s (set MAILROOM_BIN_DIR)" % exe)


def rsa_key(path):
    """An RSA key in PEM at path (openssl genrsa); returns the DKIM key record for it."""
    subprocess.run(["openssl", "genrsa", "-out", path, "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def txt_option(name, text):
    """A dnsmasq txt-record option; long texts split into character-strings of at most 200 octets
    (on dnsmasq's command line commas separate them and quotes would be kept as text)."""
    assert "," not in text
    parts = [text[i:i + 200] for i in range(0, len(text), 200)]
    return "txt-record=%s,%s" % (name, ",".join(parts))


def parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def unfold(value):
    return re.sub(r"\r?\n[ \t]+", " ", str(value))


def plain(sender, subject, msgid, extra=""):
    """A small message from sender to the demo user; its body is "hello SUBJECT"."""
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"
            "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n%s\r\nhello %s\r\n" % (
                sender, DEMO, subject, msgid, extra, subject)).encode()


class MailroomdCase(unittest.TestCase):
    """Each test starts its own mailroomd (self.start) and everything is stopped afterwards."""

    def setUp(self):
        self.daemons = []

    def tearDown(self):
        for m in self.daemons:
            m.log.seek(0)
            log = m.log.read()
            code = m.close()
            self.assertEqual(code, 0, "mailroomd exit status; its log:\n" + log)

    def start(self, extra, kinds=("mx",)):
        m = sinklib.Mailroomd(kinds, extra_config=extra, hostname=HOSTNAME)
        self.daemons.append(m)
        return m

    def log_of(self, m):
        m.log.flush()
        with open(m.dir + "/log") as f:
            return f.read()

    def folder(self, m, name=""):
        """The (file name, content) of every message in a Maildir++ folder (new/ and cur/)."""
        base = os.path.join(m.dir, "mail", "demo", "Maildir", "." + name if name else "")
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                with open(os.path.join(d, n), "rb") as f:
                    out.append((sub + "/" + n, f.read()))
        return out

    def wait_folder(self, m, count, name="", secs=15):
        return sinklib.wait_for(lambda: len(self.folder(m, name)) >= count and self.folder(m, name), secs,
                                "%d message(s) in %s" % (count, name or "INBOX"))

    def send(self, m, sender, body):
        """Through the mx listener to the demo user; every recipient accepted."""
        with smtplib.SMTP("127.0.0.1", m.ports["mx"], timeout=20) as s:
            self.assertEqual(s.sendmail(sender, [DEMO], body), {})

    def submit(self, m, to, body, sender=DEMO):
        with smtplib.SMTP("127.0.0.1", m.ports["submission"], timeout=20) as s:
            s.starttls(context=sinklib.insecure_tls())
            s.login(m.USER, m.PASS)
            s.sendmail(sender, to, body)


# --- 1. Sieve --------------------------------------------------------------------------------------

SCRIPT = r'''require ["fileinto", "vacation", "imap4flags"];
if header :contains "list-id" "announce" {
  fileinto :flags "\\Flagged" "Lists";
  stop;
}
vacation :days 1 :subject "Away" "I am away";
'''

BROKEN_SCRIPT = '''require ["fileinto"];
if header :contains "subject" "x" {
  filein "Junk";
}
'''


class SieveTest(MailroomdCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink()

    @classmethod
    def tearDownClass(cls):
        cls.sink.close()

    def sieve_daemon(self, script):
        m = self.start('[[transport]]\ndomain = "remote.test"\nto = "smtp:127.0.0.1:%d"\n' % self.sink.port)
        home = os.path.join(m.dir, "mail", "demo")
        with open(os.path.join(home, ".dovecot.sieve"), "w") as f:
            f.write(script)
        # The Lists folder as Dovecot makes it: Maildir++ ".Lists" with a maildirfolder marker.
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(home, "Maildir", sub), exist_ok=True)
            os.makedirs(os.path.join(home, "Maildir", ".Lists", sub), exist_ok=True)
        open(os.path.join(home, "Maildir", ".Lists", "maildirfolder"), "w").close()
        return m

    def replies_to(self, rcpt):
        return [(e, msg) for e, msg in self.sink.transactions() if e["rcpts"] == ["<%s>" % rcpt]]

    def test_fileinto_flags_and_vacation_once(self):
        m = self.sieve_daemon(SCRIPT)
        self.send(m, "owner@lists.remote.test",
                  plain("owner@lists.remote.test", "news", "l1@lists.remote.test",
                        "List-Id: Announcements <announce.lists.remote.test>\r\n"))
        lists = self.wait_folder(m, 1, "Lists")
        self.assertEqual(len(lists), 1)
        name, content = lists[0]
        # \Flagged: filed with its flags, so in cur/ with F in the info part.
        self.assertTrue(name.startswith("cur/"), name)
        self.assertRegex(name, r":2,[A-Z]*F[A-Z]*$")
        self.assertIn(b"hello news", content)
        self.assertIn(b"Delivered-To: " + DEMO.encode(), content)

        self.send(m, "sender@remote.test", plain("sender@remote.test", "first", "m1@remote.test"))
        inbox = self.wait_folder(m, 1)
        self.assertIn(b"hello first", inbox[0][1])
        self.assertEqual(len(self.folder(m, "Lists")), 1)
        env, reply = sinklib.wait_for(lambda: self.replies_to("sender@remote.test"), 20, "the vacation reply")[0]
        self.assertEqual(env["from"], "<>")  # RFC 3834 / RFC 5230: from the null sender
        r = parsed(reply)
        self.assertIn(DEMO, r["From"])
        self.assertIn("sender@remote.test", r["To"])
        self.assertEqual(r["Subject"], "Away")
        self.assertEqual(r["Auto-Submitted"], "auto-replied")
        self.assertEqual(r["In-Reply-To"], "<m1@remote.test>")
        self.assertIn("I am away", r.get_payload())

        # The second message from the same sender: kept, but no second reply (:days 1).
        self.send(m, "sender@remote.test", plain("sender@remote.test", "second", "m2@remote.test"))
        self.wait_folder(m, 2)
        # Another sender gets its reply: once that is through the queue, a second reply to
        # sender@remote.test (queued earlier) would have been too.
        self.send(m, "other@remote.test", plain("other@remote.test", "third", "m3@remote.test"))
        sinklib.wait_for(lambda: self.replies_to("other@remote.test"), 20, "the reply to the other sender")
        time.sleep(1)
        self.assertEqual(len(self.replies_to("sender@remote.test")), 1)
        self.assertEqual(len(self.wait_folder(m, 3)), 3)
        # The list message got no reply either.
        self.assertEqual(self.replies_to("owner@lists.remote.test"), [])

    def test_vacation_rules_and_memory_across_a_restart(self):
        m = self.sieve_daemon(SCRIPT)
        # RFC 3834 / RFC 5230: no reply to automatic mail, to the null sender, or when the user
        # is not addressed in To/Cc.
        self.send(m, "robot@remote.test", plain("robot@remote.test", "auto", "a1@remote.test",
                                                "Auto-Submitted: auto-generated\r\n"))
        self.send(m, "", plain("mailer-daemon@remote.test", "bounce", "a2@remote.test"))
        self.send(m, "bcc@remote.test", plain("bcc@remote.test", "bcc", "a3@remote.test").replace(
            b"To: <" + DEMO.encode() + b">", b"To: <someone-else@example.test>"))
        self.send(m, "first@remote.test", plain("first@remote.test", "before", "a4@remote.test"))
        sinklib.wait_for(lambda: self.replies_to("first@remote.test"), 20, "the reply to first@remote.test")
        # Remembered on disk beside the script: after a restart, still no second reply.
        self.assertTrue(os.path.exists(os.path.join(m.dir, "mail", "demo", ".mailroom-vacation")))
        self.assertEqual(m.stop(), 0)
        m.start()
        self.send(m, "first@remote.test", plain("first@remote.test", "after", "a5@remote.test"))
        self.send(m, "later@remote.test", plain("later@remote.test", "later", "a6@remote.test"))
        sinklib.wait_for(lambda: self.replies_to("later@remote.test"), 20, "the reply to later@remote.test")
        time.sleep(1)
        self.assertEqual(len(self.replies_to("first@remote.test")), 1)
        for quiet in ("robot@remote.test", "mailer-daemon@remote.test", "bcc@remote.test"):
            self.assertEqual(self.replies_to(quiet), [], quiet)
        self.assertEqual(len(self.wait_folder(m, 6)), 6)

    def test_fileinto_create(self):
        m = self.sieve_daemon('require ["fileinto", "mailbox"];\nfileinto :create "Archive";\n')
        self.send(m, "sender@remote.test", plain("sender@remote.test", "archived", "c1@remote.test"))
        archived = self.wait_folder(m, 1, "Archive")
        self.assertIn(b"hello archived", archived[0][1])
        self.assertTrue(os.path.exists(os.path.join(m.dir, "mail", "demo", "Maildir", ".Archive", "maildirfolder")))
        self.assertEqual(self.folder(m), [])

    def test_broken_script_keeps_the_message_and_logs_the_line(self):
        m = self.sieve_daemon(BROKEN_SCRIPT)  # line 3: an unknown command
        self.send(m, "sender@remote.test", plain("sender@remote.test", "x marks", "b1@remote.test"))
        inbox = self.wait_folder(m, 1)
        self.assertIn(b"hello x marks", inbox[0][1])
        self.assertEqual(self.folder(m, "Lists"), [])
        log = sinklib.wait_for(lambda: "Sieve script does not compile" in self.log_of(m) and self.log_of(m), 5,
                               "the compile error in the log")
        line = [x for x in log.splitlines() if "Sieve script does not compile" in x][0]
        self.assertRegex(line, r"line 3\b")
        self.assertEqual(self.replies_to("sender@remote.test"), [])



# --- 2. SPF, DKIM and DMARC on the MX chain ------------------------------------------------------

class AuthenticationTest(MailroomdCase):
    """good.test: SPF allows 127.0.0.1, a DKIM key at sel._domainkey, p=reject; bad.test: SPF -all,
    p=reject. All of it served by dnsmasq, which mailroomd's resolver asks."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mailroom-filters-")
        cls.key = os.path.join(cls.dir, "good.pem")
        cls.record = rsa_key(cls.key)
        with open(cls.key, "rb") as f:
            cls.private = f.read()
        cls.dns = sinklib.Dnsmasq([
            "local=/good.test/", "local=/bad.test/", "local=/held.test/", "local=/none.test/",
            txt_option("good.test", "v=spf1 ip4:127.0.0.1 -all"),
            txt_option("sel._domainkey.good.test", cls.record),
            txt_option("_dmarc.good.test", "v=DMARC1; p=reject"),
            txt_option("bad.test", "v=spf1 -all"),
            txt_option("_dmarc.bad.test", "v=DMARC1; p=reject"),
            txt_option("_dmarc.held.test", "v=DMARC1; p=quarantine"),
            txt_option("_dmarc.none.test", "v=DMARC1; p=none"),
        ])

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def checking_daemon(self, spf_fail="mark", chain='"spf", "dkim", "dmarc"'):
        return self.start('[outbound]\ndns_servers = ["127.0.0.1:%d"]\n'
                          '[filters]\nmx = [%s]\ndmarc_enforce = true\nspf_fail = "%s"\n'
                          % (self.dns.port, chain, spf_fail), kinds=("mx", "lmtp"))

    def signed(self, extra_top=b""):
        body = (b"From: A <a@good.test>\r\nTo: <demo@example.test>\r\nSubject: signed at good.test\r\n"
                b"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <s1@good.test>\r\n\r\n"
                b"Signed by dkimpy.\r\n")
        sig = dkim.sign(body, b"sel", b"good.test", self.private,
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        return extra_top + sig + body

    def dnsfunc(self, name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return self.record.encode() if name.rstrip(".") == "sel._domainkey.good.test" else None

    def received(self, m, body, sender="a@good.test"):
        """Sends body over the MX; the stored copy and our Authentication-Results fields in it."""
        self.send(m, sender, body)
        stored = self.wait_folder(m, 1)[0][1]
        return stored, self.our_results(stored)

    def our_results(self, raw):
        """Our Authentication-Results fields, unfolded."""
        return [unfold(v) for v in parsed(raw).get_all("Authentication-Results", [])
                if unfold(v).strip().startswith(HOSTNAME + ";")]

    def test_aligned_message_passes_spf_dkim_dmarc(self):
        m = self.checking_daemon()
        stored, ours = self.received(m, self.signed())
        self.assertEqual(len(ours), 1, stored.decode(errors="replace"))
        self.assertRegex(ours[0], r"\bspf=pass\b.*smtp.mailfrom=\S*good.test")
        self.assertRegex(ours[0], r"\bdkim=pass\b.*header.d=good.test")
        self.assertRegex(ours[0], r"\bdmarc=pass\b.*header.from=good.test")
        if authres is not None:
            ar = authres.AuthenticationResultsHeader.parse("Authentication-Results: " + ours[0])
            self.assertEqual(ar.authserv_id, HOSTNAME)
            got = {(r.method, r.result): {(p.type, p.name): p.value for p in r.properties} for r in ar.results}
            self.assertEqual(got[("spf", "pass")][("smtp", "mailfrom")], "a@good.test")
            self.assertEqual(got[("dkim", "pass")][("header", "d")], "good.test")
            self.assertEqual(got[("dmarc", "pass")][("header", "from")], "good.test")
        received_spf = parsed(stored)["Received-SPF"]
        self.assertIsNotNone(received_spf, stored.decode(errors="replace"))
        self.assertTrue(unfold(received_spf).strip().lower().startswith("pass"), received_spf)
        # What went in is untouched below our fields: dkimpy still verifies the stored copy.
        self.assertTrue(dkim.verify(stored.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"),
                                    dnsfunc=self.dnsfunc))

    def test_dmarc_reject_after_data_and_spf_fail_only_recorded(self):
        m = self.checking_daemon()
        bad = plain("x@bad.test", "forged", "x1@bad.test")
        with smtplib.SMTP("127.0.0.1", m.ports["mx"], timeout=20) as s:
            s.ehlo("client.bad.test")
            self.assertEqual(s.mail("x@bad.test")[0], 250)  # SPF fail is only recorded (spf_fail = mark)
            self.assertEqual(s.rcpt(DEMO)[0], 250)
            code, text = s.data(bad)
            self.assertEqual(code, 550, text)
            self.assertIn(b"bad.test", text)
            # The session goes on: an aligned message right after is taken.
            self.assertEqual(s.sendmail("a@good.test", [DEMO], self.signed()), {})
        stored = self.wait_folder(m, 1)
        time.sleep(0.3)
        self.assertEqual(len(self.folder(m)), 1)
        self.assertNotIn(b"hello forged", stored[0][1])

    def test_lmtp_listener_uses_the_mx_chain(self):
        m = self.checking_daemon()
        with smtplib.LMTP("127.0.0.1", m.ports["lmtp"], timeout=20) as s:
            s.ehlo_or_helo_if_needed()
            self.assertEqual(s.mail("x@bad.test")[0], 250)
            self.assertEqual(s.rcpt(DEMO)[0], 250)
            code, text = s.data(b"From: <x@bad.test>\r\nSubject: via LMTP\r\n\r\nforged\r\n")
            self.assertEqual(code, 550, text)
            self.assertEqual(s.sendmail("a@good.test", [DEMO], self.signed()), {})
        stored = self.wait_folder(m, 1)[0][1]
        ours = self.our_results(stored)
        self.assertEqual(len(ours), 1, stored.decode(errors="replace"))
        self.assertRegex(ours[0], r"\bdmarc=pass\b")
        self.assertIn(b"with LMTP", stored)

    def test_null_sender_checked_with_the_helo_name(self):
        # RFC 7208 2.4: MAIL FROM:<> is checked as postmaster@HELO; DMARC aligns that with From:.
        m = self.checking_daemon()
        with smtplib.SMTP("127.0.0.1", m.ports["mx"], timeout=20) as s:
            s.ehlo("good.test")
            self.assertEqual(s.sendmail("", [DEMO], plain("MAILER-DAEMON@good.test", "bounce", "n1@good.test")), {})
        ours = self.our_results(self.wait_folder(m, 1)[0][1])
        self.assertEqual(len(ours), 1, ours)
        self.assertRegex(ours[0], r"\bspf=pass (smtp\.mailfrom=postmaster@good\.test|smtp\.helo=good\.test)")
        self.assertRegex(ours[0], r"\bdkim=none\b")
        self.assertRegex(ours[0], r"\bdmarc=pass\b")

    def test_sieve_files_by_our_results(self):
        # p=none: a DMARC failure is only recorded; the user's Sieve script reads our
        # Authentication-Results and files the message.
        m = self.checking_daemon()
        with open(os.path.join(m.dir, "mail", "demo", ".dovecot.sieve"), "w") as f:
            f.write('require ["fileinto", "mailbox"];\n'
                    'if header :contains "Authentication-Results" "dmarc=fail" { fileinto :create "Junk"; }\n')
        self.send(m, "a@good.test", plain("x@none.test", "unaligned", "u1@none.test"))
        junk = self.wait_folder(m, 1, "Junk")[0][1]
        ours = self.our_results(junk)
        self.assertEqual(len(ours), 1, junk.decode(errors="replace"))
        self.assertRegex(ours[0], r"\bdmarc=fail\b.*header.from=none.test")
        self.send(m, "a@good.test", self.signed())
        self.assertIn(b"Signed by dkimpy.", self.wait_folder(m, 1)[0][1])
        self.assertEqual(len(self.folder(m, "Junk")), 1)

    def test_spf_fail_reject_refuses_at_mail(self):
        m = self.checking_daemon(spf_fail="reject")
        with smtplib.SMTP("127.0.0.1", m.ports["mx"], timeout=20) as s:
            s.ehlo("client.bad.test")
            code, text = s.mail("x@bad.test")
            self.assertEqual(code, 550, text)
            self.assertIn(b"5.7.23", text)
            s.rset()
            self.assertEqual(s.mail("a@good.test")[0], 250)

    def test_forged_results_in_our_name_are_removed(self):
        m = self.checking_daemon()
        forged = (b"Authentication-Results: " + HOSTNAME.encode() + b"; dkim=pass header.d=forged.example\r\n"
                  b"Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom=kept.example\r\n")
        stored, _ = self.received(m, self.signed(forged))
        self.assertNotIn(b"forged.example", stored)
        self.assertIn(b"kept.example", stored)  # another server's results are not ours to remove
        ours = self.our_results(stored)
        self.assertEqual(len(ours), 1, stored.decode(errors="replace"))
        self.assertIn("dkim=pass", ours[0])


    # A chain whose filters do not read the message (only "spf" here) still holds it, so a forged
    # field in our name goes (RFC 8601 5).
    def test_forged_results_removed_when_no_filter_reads_the_message(self):
        # Only SPF (it decides at MAIL, so the chain does not hold the message): our results
        # are still added, and a forged field in our name must still go.
        m = self.checking_daemon(chain='"spf"')
        forged = b"Authentication-Results: " + HOSTNAME.encode() + b"; dkim=pass header.d=forged.example\r\n"
        stored, ours = self.received(m, self.signed(forged))
        self.assertTrue(any("spf=pass" in r for r in ours), stored.decode(errors="replace"))
        self.assertNotIn(b"forged.example", stored)

    # RFC 8601 2.2 allows [CFWS] before the authserv-id: "(x) mx.example.test; ..." claims to be ours.
    def test_forged_results_behind_a_comment_are_removed(self):
        m = self.checking_daemon()
        forged = b"Authentication-Results: (trust me) " + HOSTNAME.encode() + b"; dkim=pass header.d=forged.example\r\n"
        if authres is not None:  # a real parser reads it as a claim in our name
            claim = authres.AuthenticationResultsHeader.parse(forged.decode().strip())
            self.assertEqual(claim.authserv_id, HOSTNAME)
        stored, ours = self.received(m, self.signed(forged))
        self.assertEqual(len(ours), 1, stored.decode(errors="replace"))
        self.assertNotIn(b"forged.example", stored)

    def test_a_listener_with_its_own_chain(self):
        # [filters] mx checks SPF; a second mx listener with `filters = []` checks nothing.
        port = sinklib.free_port()
        m = self.start('[outbound]\ndns_servers = ["127.0.0.1:%d"]\n[filters]\nmx = ["spf"]\n'
                       '[[listener]]\nkind = "mx"\naddress = "127.0.0.1:%d"\nfilters = []\n' % (self.dns.port, port))
        sinklib.wait_port(port, m.proc)
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            self.assertEqual(s.sendmail("a@good.test", [DEMO], plain("a@good.test", "own", "own@good.test")), {})
        stored = self.wait_folder(m, 1)[0][1]
        self.assertEqual(self.our_results(stored), [], stored.decode(errors="replace"))
        self.assertNotIn(b"Received-SPF", stored)
        self.send(m, "a@good.test", plain("a@good.test", "shared", "shared@good.test"))
        both = [raw for _, raw in self.wait_folder(m, 2)]
        checked = [raw for raw in both if b"hello shared" in raw]
        self.assertEqual(len(checked), 1)
        self.assertRegex(self.our_results(checked[0])[0], r"\bspf=pass\b")

    def test_broken_signature_dmarc_passes_on_aligned_spf(self):
        m = self.checking_daemon()
        tampered = self.signed().replace(b"Signed by dkimpy.", b"Changed after signing.")
        stored, ours = self.received(m, tampered)
        self.assertEqual(len(ours), 1, stored.decode(errors="replace"))
        self.assertRegex(ours[0], r"\bdkim=fail\b")
        self.assertRegex(ours[0], r"\bspf=pass\b")
        self.assertRegex(ours[0], r"\bdmarc=pass\b")

    def test_dmarc_quarantine_holds_the_message(self):
        # SPF passes for good.test, but the From: domain held.test is not aligned with it.
        m = self.checking_daemon()
        body = plain("x@held.test", "quarantined", "q1@held.test")
        self.send(m, "a@good.test", body)  # accepted (250), then held
        hold = os.path.join(m.dir, "queue", "hold")
        held = sinklib.wait_for(lambda: os.path.isdir(hold) and os.listdir(hold), 10, "the message in queue/hold")
        self.assertTrue(held)
        time.sleep(0.5)
        self.assertEqual(self.folder(m), [])


# --- 3. and 4. Signing on the submission chain: dkim_sign and opendkim as a milter ----------------

SUBMITTED = (b"From: Demo <demo@example.test>\r\nTo: <friend@remote.test>\r\nSubject: signed on the way out\r\n"
             b"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <out-1@example.test>\r\n\r\n"
             b"Hello friend,\r\n\r\nthis left through the submission chain.\r\n")


class SigningCase(MailroomdCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink()
        cls.dir = tempfile.mkdtemp(prefix="mailroom-filters-")
        os.chmod(cls.dir, 0o755)  # opendkim reads the key after dropping privileges
        cls.key = os.path.join(cls.dir, "example.pem")
        cls.record = rsa_key(cls.key)
        os.chmod(cls.key, 0o644)

    @classmethod
    def tearDownClass(cls):
        cls.sink.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def routed(self, filters):
        return self.start('[[transport]]\ndomain = "remote.test"\nto = "smtp:127.0.0.1:%d"\n%s' % (
            self.sink.port, filters), kinds=("mx", "submission"))

    def dnsfunc(self, name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return self.record.encode() if name.rstrip(".") == "sel._domainkey.example.test" else None

    def arrived(self, subject):
        """The message with this Subject at the sink (waits for it)."""
        def find():
            for env, msg in self.sink.transactions():
                if b"\r\nSubject: " + subject + b"\r\n" in msg:
                    return env, msg
            return None
        return sinklib.wait_for(find, 20, "the submitted message at smtp-sink")

    def check_signed(self, subject, tag):
        env, msg = self.arrived(subject)
        self.assertEqual(env["from"], "<%s>" % DEMO)
        self.assertEqual(env["rcpts"], ["<friend@remote.test>"])
        sigs = parsed(msg).get_all("DKIM-Signature", [])
        self.assertEqual(len(sigs), 1, msg.decode(errors="replace"))
        sig = re.sub(r"\s+", "", unfold(sigs[0]))
        self.assertIn("d=example.test;", sig)
        self.assertIn("s=sel;", sig)
        self.assertTrue(dkim.verify(msg, dnsfunc=self.dnsfunc), "%s: dkimpy does not verify:\n%s" % (
            tag, msg.decode(errors="replace")))
        # The check can fail: a changed body or signed header does not verify.
        self.assertFalse(dkim.verify(msg.replace(b"this left", b"this went"), dnsfunc=self.dnsfunc))
        self.assertFalse(dkim.verify(msg.replace(b"Subject: " + subject, b"Subject: x" + subject), dnsfunc=self.dnsfunc))
        return msg


class DkimSignTest(SigningCase):
    def test_submitted_mail_is_signed_and_verifies(self):
        m = self.routed('[filters]\nsubmission = ["dkim_sign"]\n'
                        '[[filters.dkim_key]]\ndomain = "example.test"\nselector = "sel"\nkey = "%s"\n' % self.key)
        body = SUBMITTED.replace(b"signed on the way out", b"dkim_sign on the way out")
        self.submit(m, ["friend@remote.test"], body)
        self.check_signed(b"dkim_sign on the way out", "dkim_sign")
        # Mail from outside (the MX chain has no dkim_sign) is not signed in our name.
        self.send(m, "someone@remote.test", body.replace(b"From: Demo", b"From: Someone"))
        stored = self.wait_folder(m, 1)[0][1]
        self.assertNotIn(b"DKIM-Signature", stored)


class MilterTest(SigningCase):
    @classmethod
    def setUpClass(cls):
        if milter_test.OPENDKIM is None:
            raise unittest.SkipTest("opendkim is not installed (scripts/setup.sh installs it)")
        super().setUpClass()

    def opendkim(self):
        """opendkim signing for example.test, on a loopback port (milter_test's launcher). Our
        address is not one of its InternalHosts: it signs only what the MTA says was
        authenticated (the {auth_authen} and {auth_type} macros)."""
        od = milter_test.OpenDKIM(self.dir, "sign-%d" % sinklib.free_port(), {
            "Mode": "s", "Domain": "example.test", "Selector": "sel", "KeyFile": self.key,
            "RequireSafeKeys": "false", "Canonicalization": "relaxed/simple", "InternalHosts": "192.0.2.1"})

        def stop():
            if od.proc.poll() is None:
                od.proc.kill()  # opendkim takes 5 s to stop on SIGTERM; nothing of it is checked then
            od.stop()
        self.addCleanup(stop)
        return od

    def milter_daemon(self, port, on_failure, mx=""):
        return self.routed('[filters]\nsubmission = ["milter:opendkim"]\nmx = [%s]\n' % mx +
                           '[[filters.milter]]\nname = "opendkim"\naddress = "inet:%d@127.0.0.1"\non_failure = "%s"\n'
                           % (port, on_failure))

    def test_opendkim_signs_submitted_mail(self):
        od = self.opendkim()
        m = self.milter_daemon(od.port, "tempfail")
        body = SUBMITTED.replace(b"signed on the way out", b"opendkim on the way out")
        self.submit(m, ["friend@remote.test"], body)
        msg = self.check_signed(b"opendkim on the way out", "opendkim")
        self.assertIn(b"c=relaxed/simple", msg.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" "))
        # The same milter on the MX chain: that client did not authenticate, so nothing is signed.
        m2 = self.milter_daemon(od.port, "tempfail", mx='"milter:opendkim"')
        self.send(m2, "someone@remote.test", body)
        stored = self.wait_folder(m2, 1)[0][1]
        self.assertIn(b"this left through the submission chain.", stored)
        self.assertNotIn(b"DKIM-Signature", stored)

    def test_milter_down_tempfail(self):
        m = self.milter_daemon(sinklib.free_port(), "tempfail")  # nothing listens there
        code = None
        try:
            with smtplib.SMTP("127.0.0.1", m.ports["submission"], timeout=20) as s:
                s.starttls(context=sinklib.insecure_tls())
                s.login(m.USER, m.PASS)
                code, text = s.mail(DEMO)
        except smtplib.SMTPConnectError as e:  # refused at connect (the greeting)
            code, text = e.smtp_code, e.smtp_error
        except smtplib.SMTPServerDisconnected as e:
            self.fail("disconnected without a reply: %s" % e)
        self.assertTrue(400 <= code < 500, (code, text))

    def test_milter_dies_mid_session(self):
        # One milter connection per SMTP connection: when opendkim dies after the greeting, the
        # next phase meets the failure policy.
        for policy in ("tempfail", "accept"):
            with self.subTest(on_failure=policy):
                od = self.opendkim()
                m = self.milter_daemon(od.port, policy)
                subject = b"milter died, " + policy.encode()
                with smtplib.SMTP("127.0.0.1", m.ports["submission"], timeout=20) as s:
                    s.starttls(context=sinklib.insecure_tls())
                    s.login(m.USER, m.PASS)
                    od.proc.kill()  # a crash
                    od.proc.wait()
                    code, text = s.mail(DEMO)
                    if policy == "tempfail":
                        self.assertEqual(code, 451, text)
                        continue
                    self.assertEqual(code, 250, text)
                    self.assertEqual(s.rcpt("friend@remote.test")[0], 250)
                    self.assertEqual(s.data(SUBMITTED.replace(b"signed on the way out", subject))[0], 250)
                env, msg = self.arrived(subject)
                self.assertNotIn(b"DKIM-Signature", msg)

    def test_milter_down_accept_lets_mail_through_unsigned(self):
        m = self.milter_daemon(sinklib.free_port(), "accept")
        body = SUBMITTED.replace(b"signed on the way out", b"milter down, accepted")
        self.submit(m, ["friend@remote.test"], body)
        env, msg = self.arrived(b"milter down, accepted")
        self.assertEqual(env["rcpts"], ["<friend@remote.test>"])
        self.assertNotIn(b"DKIM-Signature", msg)
        self.assertIn(b"this left through the submission chain.", msg)


if __name__ == "__main__":
    sinklib.main()
