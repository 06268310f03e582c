"""Shared helpers for interop tests: start examples/smtp_sink on loopback, read its Maildir."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN_DIR = os.environ.get("MAILROOM_BIN_DIR", os.path.join(os.getcwd(), "bin"))
USER, PASSWORD = "alice", "s3cret pass"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, secs=10.0, host="127.0.0.1"):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited early with %s" % (proc.args[0], proc.returncode))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def insecure_tls():
    """A client TLS context that accepts the tests' self-signed certificates."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def make_cert(d):
    """A throw-away self-signed P-256 certificate: d/cert.pem and d/key.pem."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", d + "/key.pem", "-out", d + "/cert.pem", "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)


class Mailroomd:
    """examples/mailroomd in a temporary data_dir with user demo@example.test / demo, a self-signed
    certificate and one listener per kind on a free loopback port (self.ports[kind])."""

    USER, PASS = "demo@example.test", "demo"

    def __init__(self, kinds, extra_config="", domain="example.test", addresses=None, hostname="localhost"):
        """kinds: listener kinds on free 127.0.0.1 ports, or on addresses[kind] ("IP:PORT") when
        given; extra_config is appended to the TOML file (e.g. an [outbound] table)."""
        self.dir = tempfile.mkdtemp(prefix="mailroomd-")
        d = self.dir
        self.domain = domain
        self.USER = "demo@" + domain
        os.makedirs(os.path.join(d, "mail", "demo"))
        make_cert(d)
        with open(d + "/passwd", "w") as f:
            f.write("%s:{PLAIN}%s\n" % (self.USER, self.PASS))
        given = dict(addresses or {})
        chosen = [k for k in kinds if k not in given]
        # free_port() only finds a port that was free a moment ago: it may hand the same port to
        # two listeners here, or a test running in parallel may take it first. Then mailroomd
        # cannot listen ("in use"): ports are kept distinct, and chosen again a few times.
        for attempt in range(3):
            addresses = dict(given)
            for k in chosen:
                port = free_port()
                while "127.0.0.1:%d" % port in addresses.values():
                    port = free_port()
                addresses[k] = "127.0.0.1:%d" % port
            self.addresses = addresses
            self.ports = {k: int(a.rsplit(":", 1)[1]) for k, a in addresses.items()}
            self.config = d + "/mailroomd.toml"
            with open(self.config, "w") as f:
                f.write('hostname = "%s"\ndata_dir = "%s"\nlocal_domains = ["%s"]\n' % (hostname, d, domain))
                f.write('[tls]\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n[auth]\npasswd_file = "%s/passwd"\n' % (d, d, d))
                for kind, address in self.addresses.items():
                    f.write('[[listener]]\nkind = "%s"\naddress = "%s"\n' % (kind, address))
                f.write(extra_config)
            self.log = open(d + "/log", "w+")
            try:
                self.start()
                return
            except RuntimeError:
                self.log.seek(0)
                taken = "in use" in self.log.read()
                self.log.close()
                if attempt == 2 or not taken or not chosen:
                    raise

    def start(self):
        self.proc = subprocess.Popen([os.path.join(BIN_DIR, "mailroomd"), "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        for address in self.addresses.values():
            host, port = address.rsplit(":", 1)
            wait_port(int(port), self.proc, host=host)

    def stop(self):
        """SIGTERM; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=15)
        return self.proc.returncode

    def close(self):
        code = self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return code

    def deliver(self, *bodies):
        """Sends each body to demo over the mx listener, then waits until all are in the Maildir."""
        import smtplib
        new = os.path.join(self.dir, "mail", "demo", "Maildir", "new")
        before = len(os.listdir(new)) if os.path.isdir(new) else 0
        host = self.addresses["mx"].rsplit(":", 1)[0]
        with smtplib.SMTP(host, self.ports["mx"], timeout=10) as s:
            for body in bodies:
                s.sendmail("x@remote.example", [self.USER], body)
        deadline = time.time() + 10
        while time.time() < deadline and not (os.path.isdir(new) and len(os.listdir(new)) >= before + len(bodies)):
            time.sleep(0.05)


def require_tool(name):
    if shutil.which(name) is None:
        print("SKIP: %s is not installed (scripts/test.sh installs it)" % name)
        sys.exit(77)


class Sink:
    """smtp_sink with plain (STARTTLS) and implicit-TLS listeners, a self-signed certificate and one user."""

    def __init__(self, extra=(), openssl_cert=False):
        self.dir = tempfile.mkdtemp(prefix="mailroom-interop-")
        self.maildir = os.path.join(self.dir, "Maildir")
        self.port = free_port()
        self.tls_port = free_port()
        self.lmtp_port = free_port()
        if openssl_cert:
            # A certificate made by another tool, for localhost and 127.0.0.1, loaded from files.
            self.cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", key, "-out", self.cert, "-days", "2", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           check=True, capture_output=True)
            tls = ["--tls-cert", self.cert, "--tls-key", key]
        else:
            self.cert, tls = None, ["--self-signed"]
        args = [os.path.join(BIN_DIR, "smtp_sink"),
                "--listen", "127.0.0.1:%d" % self.port,
                "--listen-tls", "127.0.0.1:%d" % self.tls_port,
                "--listen-lmtp", "127.0.0.1:%d" % self.lmtp_port,
                "--maildir", self.maildir, "--hostname", "mx.test",
                "--user", "%s:%s" % (USER, PASSWORD), "--log-level", "warning"] + tls + list(extra)
        self.log = open(os.path.join(self.dir, "sink.log"), "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log)
        wait_port(self.port, self.proc)
        wait_port(self.tls_port, self.proc)
        wait_port(self.lmtp_port, self.proc)

    def messages(self):
        new = os.path.join(self.maildir, "new")
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def leftovers_in_tmp(self):
        return os.listdir(os.path.join(self.maildir, "tmp"))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self.log.seek(0)
        log = self.log.read()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode, out, log


class SinkTest(unittest.TestCase):
    extra_args = ()
    openssl_cert = False

    def setUp(self):
        self.sink = Sink(self.extra_args, self.openssl_cert)

    def tearDown(self):
        code, out, log = self.sink.stop()
        self.assertEqual(code, 0, "smtp_sink exit code; log:\n" + log)
        self.assertEqual(out, b"", "smtp_sink must print nothing on stdout")


def main():
    unittest.main(verbosity=2)


class Postfix:
    """A private Postfix instance (Debian's postfix, run as root) listening on `address`
    ("127.0.0.2:PORT") for `domain`, delivering users' mail with virtual(8) into
    <dir>/mail/<user>/Maildir/, with STARTTLS on a self-signed certificate. `main_cf` adds or
    overrides main.cf settings. Unknown users get 550 5.1.1 at RCPT."""

    def __init__(self, address, domain, users, main_cf=""):
        if os.geteuid() != 0:
            print("SKIP: Postfix needs root")
            sys.exit(77)
        require_tool("postfix")
        self.dir = tempfile.mkdtemp(prefix="postfix-")
        self.address, self.domain = address, domain
        d = self.dir
        etc, mail = d + "/etc", d + "/mail"
        for x in (etc, d + "/queue", d + "/data", mail):
            os.makedirs(x)
        make_cert(d)
        import pwd
        nobody = pwd.getpwnam("nobody")
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        os.chmod(d, 0o755)  # Postfix's daemons run as postfix and nobody
        pf = pwd.getpwnam("postfix")
        os.chown(d + "/data", pf.pw_uid, pf.pw_gid)
        host = address.rsplit(":", 1)[0]
        with open(etc + "/main.cf", "w") as f:
            f.write("""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
proxy_interfaces = {host}
inet_protocols = ipv4
myhostname = mx.{domain}
mydomain = {domain}
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
alias_maps =
alias_database =
local_transport = error:local delivery disabled
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_tls_cert_file = {d}/cert.pem
smtpd_tls_key_file = {d}/key.pem
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
{extra}
""".format(d=d, host=host, domain=domain, mail=mail, etc=etc, uid=nobody.pw_uid, gid=nobody.pw_gid, extra=main_cf))
        with open(etc + "/vmailbox", "w") as f:
            for u in users:
                f.write("%s@%s %s/Maildir/\n" % (u, domain, u))
        with open(etc + "/master.cf", "w") as f:
            f.write("%s inet n - n - - smtpd\n" % address)
            for line in ("pickup unix n - n 60 1 pickup", "cleanup unix n - n - 0 cleanup",
                         "qmgr unix n - n 300 1 qmgr", "tlsmgr unix - - n 1000? 1 tlsmgr",
                         "rewrite unix - - n - - trivial-rewrite", "bounce unix - - n - 0 bounce",
                         "defer unix - - n - 0 bounce", "trace unix - - n - 0 bounce",
                         "verify unix - - n - 1 verify", "flush unix n - n 1000? 0 flush",
                         "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
                         "relay unix - - n - - smtp", "showq unix n - n - - showq", "error unix - - n - - error",
                         "retry unix - - n - - error", "discard unix - - n - - discard",
                         "virtual unix - n n - - virtual", "anvil unix - - n - 1 anvil",
                         "scache unix - - n - 1 scache", "postlog unix-dgram n - n - 1 postlogd"):
                f.write(line + "\n")
        self.etc = etc
        subprocess.run(["postfix", "-c", etc, "set-permissions"], capture_output=True)
        self.start()

    def start(self):
        r = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix start: " + r.stdout + r.stderr)
        host, port = self.address.rsplit(":", 1)
        wait_port(int(port), None, 20, host)

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)
        host, port = self.address.rsplit(":", 1)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection((host, int(port)), timeout=0.5):
                    time.sleep(0.1)
            except OSError:
                return

    def messages(self, user):
        new = os.path.join(self.dir, "mail", user, "Maildir", "new")
        if not os.path.isdir(new):
            return []
        out = []
        for name in sorted(os.listdir(new)):
            with open(os.path.join(new, name), "rb") as f:
                out.append(f.read())
        return out

    def log(self):
        try:
            with open(self.dir + "/maillog") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Dnsmasq:
    """dnsmasq answering only the given records (dnsmasq long options without "--") on
    127.0.0.1:port; nothing is forwarded."""

    def __init__(self, records):
        require_tool("dnsmasq")
        self.port = free_port()
        args = ["dnsmasq", "--no-daemon", "--port=%d" % self.port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--user=root",
                "--log-facility=-"] + ["--" + r for r in records]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_for(predicate, secs=20.0, what="condition"):
    deadline = time.time() + secs
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)
