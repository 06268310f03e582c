"""mailroomd's IMAP server with real clients: Python imaplib (STARTTLS, IMAP4_SSL, LOGIN,
AUTHENTICATE PLAIN, SELECT/EXAMINE, FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, APPEND, LIST,
STATUS, CREATE/RENAME/DELETE, IDLE with a delivery in between, and over imaplib's raw commands
QRESYNC, ESEARCH/SEARCHRES, BINARY and LIST-EXTENDED; SORT, THREAD and ACL with a mailbox shared
between two users through imaplib's own methods) and curl imaps://."""
import imaplib
import os
import socket
import subprocess
import time
import unittest

import sinklib

USER, PASS = "demo@example.test", "demo"
imaplib.Commands.setdefault("LISTRIGHTS", ("AUTH", "SELECTED"))  # RFC 4314; not in imaplib's table
BODIES = [b"Subject: first\r\nFrom: Ann <ann@remote.example>\r\n\r\nhello imap\r\n",
          b"Subject: second\r\n\r\nline 1\r\nline 2\r\n"]


class ImapTest(unittest.TestCase):
    def setUp(self):
        self.m = sinklib.Mailroomd(("mx", "imap", "imaps"))
        self.ports, self.dir = self.m.ports, self.m.dir
        self.m.deliver(*BODIES)

    def tearDown(self):
        self.assertEqual(self.m.close(), 0)

    def deliver(self, body):
        self.m.deliver(body)

    def ssl(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=sinklib.insecure_tls(), timeout=10)
        m.login(USER, PASS)
        return m

    def test_starttls_login_fetch_store_search_expunge(self):
        m = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=10)
        self.assertIn("LOGINDISABLED", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login(USER, PASS)
        m.starttls(ssl_context=sinklib.insecure_tls())
        m.login(USER, PASS)
        typ, data = m.select("INBOX")
        self.assertEqual((typ, int(data[0])), ("OK", 2))
        typ, data = m.fetch("1:2", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
        msgs = [x for x in data if isinstance(x, tuple)]
        self.assertEqual(len(msgs), 2)
        for (meta, raw), body in zip(msgs, BODIES):
            self.assertTrue(raw.endswith(body), raw)
            self.assertIn(b"RFC822.SIZE %d" % len(raw), meta)
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (FROM)])")
        self.assertEqual(data[0][1], b"From: Ann <ann@remote.example>\r\n\r\n")
        typ, data = m.search(None, "UNSEEN")
        self.assertEqual(data[0].split(), [b"1", b"2"])
        m.fetch("1", "(RFC822)")  # sets \Seen
        typ, data = m.search(None, "SEEN")
        self.assertEqual(data[0].split(), [b"1"])
        typ, data = m.uid("SEARCH", None, "SUBJECT", "second")
        uid2 = data[0].split()[0]
        m.uid("STORE", uid2, "+FLAGS", "(\\Deleted $Junk)")
        typ, data = m.fetch("2", "(FLAGS)")
        self.assertIn(b"$Junk", data[0])
        typ, data = m.expunge()
        self.assertEqual(data, [b"2"])
        m.close()
        m.logout()

    def test_mailboxes_append_copy_move_status(self):
        m = self.ssl()
        typ, data = m.list()
        names = b"\n".join(data)
        for special in (b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive"):
            self.assertIn(special, names)
        self.assertEqual(m.create("Projects/2026")[0], "OK")
        typ, data = m.append("Projects/2026", "(\\Seen)", imaplib.Time2Internaldate(time.time()),
                             b"Subject: appended\r\n\r\nvia APPEND\r\n")
        self.assertEqual(typ, "OK")
        self.assertIn(b"APPENDUID", data[0])
        typ, data = m.status("Projects/2026", "(MESSAGES UNSEEN UIDNEXT)")
        self.assertIn(b"MESSAGES 1 UNSEEN 0 UIDNEXT 2", data[0])
        m.select("INBOX")
        typ, data = m.copy("1", "Archive")
        self.assertEqual(typ, "OK")
        typ, data = m._simple_command("MOVE", "2", "Trash")
        self.assertEqual(typ, "OK")
        typ, data = m.select("INBOX", readonly=True)
        self.assertEqual(int(data[0]), 1)
        self.assertEqual(m.rename("Projects", "Old")[0], "OK")
        typ, data = m.status("Old/2026", "(MESSAGES)")
        self.assertIn(b"MESSAGES 1", data[0])
        self.assertEqual(m.delete("Old/2026")[0], "OK")
        self.assertEqual(m.select("Nope")[0], "NO")
        m.logout()

    def test_idle_sees_a_delivery(self):
        m = self.ssl()
        m.select("INBOX")
        tag = m._new_tag().decode()
        m.send(("%s IDLE\r\n" % tag).encode())
        self.assertTrue(m.readline().startswith(b"+"))
        self.deliver(b"Subject: while idle\r\n\r\nping\r\n")
        m.sock.settimeout(15)
        line = m.readline()
        while b"EXISTS" not in line:
            line = m.readline()
        self.assertEqual(line.strip(), b"* 3 EXISTS")
        m.send(b"DONE\r\n")
        while not line.startswith(tag.encode()):
            line = m.readline()
        self.assertIn(b"OK", line)
        m.logout()

    def test_condstore_and_quota(self):
        m = self.ssl()
        typ, data = m.select("INBOX")
        self.assertIn("CONDSTORE", m.capabilities)
        typ, data = m.fetch("1:*", "(MODSEQ)")
        before = max(int(x.split(b"MODSEQ (")[1].split(b")")[0]) for x in data)  # HIGHESTMODSEQ
        m.store("1", "+FLAGS", "(\\Flagged)")
        m.untagged_responses.clear()
        typ, data = m.fetch("1:*", "(FLAGS) (CHANGEDSINCE %d)" % before)
        self.assertEqual(len(data), 1, data)  # only message 1 changed
        self.assertIn(b"\\Flagged", data[0])
        typ, data = m._simple_command("STORE", "1", "(UNCHANGEDSINCE %d)" % before, "+FLAGS", "(\\Seen)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"[MODIFIED 1]", data[0])
        typ, data = m.getquotaroot("INBOX")
        self.assertEqual(typ, "OK")
        m.logout()

    def test_authenticate_plain_and_curl(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=sinklib.insecure_tls(), timeout=10)
        typ, _ = m.authenticate("PLAIN", lambda _: b"\0" + USER.encode() + b"\0" + PASS.encode())
        self.assertEqual(typ, "OK")
        m.logout()
        sinklib.require_tool("curl")
        r = subprocess.run(["curl", "-sS", "-k", "-u", "%s:%s" % (USER, PASS),
                            "imaps://127.0.0.1:%d/INBOX;UID=1" % self.ports["imaps"]], capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(BODIES[0]))
        r = subprocess.run(["curl", "-sS", "-k", "-u", "%s:%s" % (USER, PASS), "imaps://127.0.0.1:%d/" % self.ports["imaps"]],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"INBOX", r.stdout)

    def test_qresync_esearch_binary_list_extended(self):
        m = self.ssl()
        for cap in ("QRESYNC", "ESEARCH", "SEARCHRES", "BINARY", "LIST-EXTENDED"):
            self.assertIn(cap, m.capabilities)
        typ, data = m._simple_command("ENABLE", "QRESYNC")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.untagged_responses.pop("ENABLED"), [b"QRESYNC"])
        m.select("INBOX")
        uidvalidity = int(m.untagged_responses["UIDVALIDITY"][0])
        highest = int(m.untagged_responses["HIGHESTMODSEQ"][0])
        # Another session changes flags on message 1 and expunges message 2.
        other = self.ssl()
        other.select("INBOX")
        other.store("1", "+FLAGS", "(\\Flagged)")
        other.store("2", "+FLAGS", "(\\Deleted)")
        other.expunge()
        other.logout()
        m.close()
        m.untagged_responses.clear()
        typ, data = m._simple_command("SELECT", "INBOX", "(QRESYNC (%d %d 1:2))" % (uidvalidity, highest))
        self.assertEqual(typ, "OK", data)
        m.state = "SELECTED"  # imaplib does not know SELECT with parameters
        self.assertEqual(m.untagged_responses.get("VANISHED"), [b"(EARLIER) 2"])
        fetched = m.untagged_responses.get("FETCH", [])
        self.assertEqual(len(fetched), 1, fetched)
        self.assertIn(b"UID 1 FLAGS (\\Flagged", fetched[0])
        # A stale UIDVALIDITY gets a plain SELECT.
        m.untagged_responses.clear()
        typ, data = m._simple_command("SELECT", "INBOX", "(QRESYNC (%d 1))" % (uidvalidity + 1))
        self.assertEqual(typ, "OK")
        self.assertNotIn("VANISHED", m.untagged_responses)
        # ESEARCH result options and SEARCHRES.
        self.deliver(b"Subject: third\r\n\r\nhi\r\n")
        m.noop()
        m.untagged_responses.clear()
        typ, data = m._simple_command("UID", "SEARCH", "RETURN", "(MIN MAX COUNT SAVE)", "ALL")
        self.assertEqual(typ, "OK")
        esearch = m.untagged_responses["ESEARCH"][0]
        self.assertRegex(esearch, rb"UID MIN 1 MAX \d+ COUNT 2")
        typ, data = m.uid("FETCH", "$", "(UID)")
        self.assertEqual(len(data), 2, data)
        # BINARY of a base64 part, as literal8 when it holds NUL.
        msg = (b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--x--\r\n")
        m.append("INBOX", None, None, msg)
        m.noop()
        typ, data = m.fetch("3", "(BINARY.SIZE[1] BINARY.PEEK[1])")
        self.assertEqual(typ, "OK")
        self.assertIn(b"BINARY.SIZE[1] 3", data[0][0])
        self.assertEqual(data[0][1], b"\x00\x01\x02")
        # LIST-EXTENDED.
        m.create("Lists/dev")
        m.subscribe("Lists/dev")
        typ, data = m._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "%")
        self.assertEqual(typ, "OK")
        listed = m.untagged_responses.pop("LIST")
        self.assertTrue(any(b'"Lists" ("CHILDINFO" ("SUBSCRIBED"))' in x for x in listed), listed)
        typ, data = m._simple_command("LIST", '""', "*", "RETURN", "(SPECIAL-USE STATUS (MESSAGES))")
        self.assertEqual(typ, "OK")
        self.assertIn(b'"INBOX" (MESSAGES 3)', b"\n".join(m.untagged_responses.pop("STATUS")))
        m.logout()

    def test_acl_sharing_sort_thread(self):
        # A second user, ann, to share with.
        with open(os.path.join(self.dir, "passwd"), "a") as f:
            f.write("ann@example.test:{PLAIN}annpass\n")
        os.makedirs(os.path.join(self.dir, "mail", "ann"))
        self.m.stop()
        self.m.start()
        m = self.ssl()
        self.assertIn("ACL", m.capabilities)
        self.assertIn("THREAD=REFERENCES", m.capabilities)
        self.assertEqual(m.setacl("INBOX", "ann@example.test", "lr")[0], "OK")
        typ, data = m.getacl("INBOX")
        self.assertEqual(typ, "OK")
        self.assertIn(b'"ann" "lr"', data[0])
        typ, data = m.myrights("INBOX")
        self.assertIn(b"lrswipkxtea", data[0])
        typ, data = m._simple_command("LISTRIGHTS", "INBOX", "ann@example.test")  # imaplib has no method
        self.assertEqual(typ, "OK")
        self.assertIn(b'"ann" "" l r s w i p k x t e a', m.untagged_responses.pop("LISTRIGHTS")[0])
        m.select("INBOX")
        typ, data = m.sort("(SUBJECT)", "UTF-8", "ALL")
        self.assertEqual(data[0].split(), [b"1", b"2"])  # first, second
        typ, data = m.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")
        self.assertEqual(data[0].split(), [b"2", b"1"])
        typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0], b"(1)(2)")
        typ, data = m.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
        self.assertEqual(typ, "OK")
        m.logout()
        a = imaplib.IMAP4_SSL("127.0.0.1", self.ports["imaps"], ssl_context=sinklib.insecure_tls(), timeout=10)
        a.login("ann@example.test", "annpass")
        typ, data = a.namespace()
        self.assertIn(b'(("Shared/" "/"))', data[0])
        typ, data = a.list()
        self.assertIn(b'"Shared/demo/INBOX"', b"\n".join(data))
        typ, data = a.select("Shared/demo/INBOX", readonly=True)
        self.assertEqual((typ, int(data[0])), ("OK", 2))
        typ, data = a.fetch("1", "(BODY.PEEK[])")
        self.assertTrue(data[0][1].endswith(BODIES[0]))
        typ, data = a.myrights("Shared/demo/INBOX")
        self.assertIn(b'"lr"', data[0])
        typ, data = a.copy("1", "INBOX")  # into ann's own INBOX, across accounts
        self.assertEqual(typ, "OK", data)
        typ, data = a.getacl("Shared/demo/INBOX")
        self.assertEqual(typ, "NO")  # no 'a' right
        typ, data = a.status("INBOX", "(MESSAGES)")
        self.assertIn(b"MESSAGES 1", data[0])
        a.logout()

    def test_sessions_on_one_mailbox_stay_consistent(self):
        a, b, c = self.ssl(), self.ssl(), self.ssl()
        for m in (a, b, c):
            m.select("INBOX")
        # c waits in IDLE through everything that follows.
        tag = c._new_tag().decode()
        c.send(("%s IDLE\r\n" % tag).encode())
        self.assertTrue(c.readline().startswith(b"+"))
        self.deliver(b"Subject: third\r\n\r\nmid-session delivery\r\n")
        a.untagged_responses.clear()
        a.noop()
        self.assertEqual(a.untagged_responses.pop("EXISTS"), [b"3"])
        b.noop()
        b.untagged_responses.clear()
        b.store("3", "+FLAGS", "(\\Flagged)")
        b.store("1", "+FLAGS", "(\\Deleted)")
        typ, data = b.expunge()
        self.assertEqual(data, [b"1"])
        a.untagged_responses.clear()
        a.noop()
        self.assertEqual(a.untagged_responses.get("EXPUNGE"), [b"1"])
        fetched = b" ".join(a.untagged_responses.get("FETCH", []))
        self.assertIn(b"\\Flagged", fetched)
        uids = []
        for m in (a, b):
            m.untagged_responses.clear()
            typ, data = m.fetch("1:*", "(UID FLAGS)")
            uids.append([x.split(b"UID ")[1].split(b" ")[0] for x in data])
        self.assertEqual(uids[0], uids[1])
        self.assertEqual(len(uids[0]), 2)
        # c saw the delivery, the flag change and the expunge while idling.
        c.sock.settimeout(15)
        seen = b""
        while not (b"EXISTS" in seen and b"EXPUNGE" in seen and b"Flagged" in seen):
            seen += c.readline()
        c.send(b"DONE\r\n")
        line = c.readline()
        while not line.startswith(tag.encode()):
            line = c.readline()
        self.assertIn(b"OK", line)
        c.untagged_responses.clear()
        typ, data = c.fetch("1:*", "(UID)")
        self.assertEqual([x.split(b"UID ")[1].rstrip(b")") for x in data], uids[0])
        for m in (a, b, c):
            m.logout()

    def test_hostile_input(self):
        with socket.create_connection(("127.0.0.1", self.ports["imap"]), timeout=10) as s:
            s.recv(4096)
            s.sendall(b"a LOGIN {4294967296}\r\n")
            self.assertIn(b"a BAD", s.recv(4096))
            s.sendall(b"b NOOP " + b"(" * 100000 + b"\r\n")
            data = b""
            while b"b BAD" not in data and b"* BAD" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(b"BAD" in data)
            s.sendall(b"c STARTTLS\r\nd LOGIN injected x\r\n")
            data = s.recv(4096)
            self.assertIn(b"c OK", data)
            self.assertNotIn(b"d ", data)  # the pipelined command is discarded, not answered


if __name__ == "__main__":
    unittest.main(verbosity=2)
