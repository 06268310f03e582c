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


def wait_port(port, proc, secs=10.0):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("smtp_sink exited early with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
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

    def __init__(self, kinds):
        self.dir = tempfile.mkdtemp(prefix="mailroomd-")
        d = self.dir
        os.makedirs(os.path.join(d, "mail", "demo"))
        make_cert(d)
        with open(d + "/passwd", "w") as f:
            f.write("%s:{PLAIN}%s\n" % (self.USER, self.PASS))
        self.ports = {k: free_port() for k in kinds}
        self.config = d + "/mailroomd.toml"
        with open(self.config, "w") as f:
            f.write('data_dir = "%s"\nlocal_domains = ["example.test"]\n' % d)
            f.write('[tls]\ncert = "%s/cert.pem"\nkey = "%s/key.pem"\n[auth]\npasswd_file = "%s/passwd"\n' % (d, d, d))
            for kind, port in self.ports.items():
                f.write('[[listener]]\nkind = "%s"\naddress = "127.0.0.1:%d"\n' % (kind, port))
        self.log = open(d + "/log", "w+")
        self.start()

    def start(self):
        self.proc = subprocess.Popen([os.path.join(BIN_DIR, "mailroomd"), "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        for port in self.ports.values():
            wait_port(port, self.proc)

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
        with smtplib.SMTP("127.0.0.1", self.ports["mx"], timeout=10) as s:
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
