"""Private MySQL-compatible servers for the tests: each on a free port, with a
throwaway data directory and TLS certificates from a test CA the rig creates.

- MariaDB 10.11 from Debian's packages (`mariadb-install-db`, `mariadbd`).
- MySQL 9.x from the root filesystem `scripts/provision-engines` builds, run under chroot.

`start_engine` returns a running Engine, or raises EngineUnavailable with the reason
(so a test can skip, or fail in CI, with a message that says what is missing).
"""

import datetime
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.rig.emulator import free_port

ENGINES = ("mariadb", "mysql9")
CACHE_DIR = Path(
    os.environ.get("WANDB_OPS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wandb-ops"
)
MYSQL9_ROOTFS = CACHE_DIR / "mysql9-rootfs"
STARTUP_TIMEOUT_S = 90


class EngineUnavailable(Exception):
    """This engine cannot run on this machine; the message says why and how to fix it."""


@dataclass
class Engine:
    name: str
    host: str
    port: int
    ca_path: Path
    version: str = ""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _cleanup: list[Path] = field(default_factory=list, repr=False)

    def connect(self, user: str = "root", password: str = "", **kwargs: Any) -> "pymysql.connections.Connection[Any]":
        return pymysql.connect(host=self.host, port=self.port, user=user, password=password, **kwargs)

    def issue_client_certificate(self, common_name: str) -> tuple[str, str]:
        """A client certificate (PEM) and key signed by this engine's CA, subject /CN=<common_name>."""
        ca_cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        ca_key = serialization.load_pem_private_key((self.ca_path.parent / "ca-key.pem").read_bytes(), password=None)
        assert isinstance(ca_key, rsa.RSAPrivateKey)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)


def start_engine(name: str) -> Engine:
    if name == "mariadb":
        return _start_mariadb()
    if name == "mysql9":
        return _start_mysql9()
    raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")


# ---------------------------------------------------------------- TLS


def write_test_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1/localhost, so clients can verify the server.

    They carry the extensions strict X.509 verification asks for (key usage, key identifiers), as
    real CAs' do: Python 3.13's default TLS context (urllib3, the Kubernetes client) checks them."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wandb-ops test CA")])
    ca_key_id = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    certificate_signing = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    server_usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(certificate_signing, critical=True)
        .add_extension(ca_key_id, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(server_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_format = serialization.PrivateFormat.TraditionalOpenSSL
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "ca-key.pem").write_bytes(ca_key.private_bytes(pem, key_format, serialization.NoEncryption()))
    (directory / "server-cert.pem").write_bytes(server_cert.public_bytes(pem))
    (directory / "server-key.pem").write_bytes(server_key.private_bytes(pem, key_format, serialization.NoEncryption()))


def _wait_until_ready(engine: Engine, log_path: Path) -> Engine:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    assert engine._process is not None
    while time.monotonic() < deadline:
        if engine._process.poll() is not None:
            break
        try:
            with engine.connect(connect_timeout=2) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                engine.version = str(cursor.fetchone()[0])
                return engine
        except pymysql.err.OperationalError:
            time.sleep(0.25)
    engine.stop()
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:]) if log_path.exists() else ""
    raise EngineUnavailable(f"{engine.name} did not accept connections within {STARTUP_TIMEOUT_S}s:\n{tail}")


def _run(command: list[str], log_path: Path, what: str) -> None:
    with log_path.open("ab") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise EngineUnavailable(f"{what} failed (exit {result.returncode}):\n{tail}")


def _as_root_flags() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


# ---------------------------------------------------------------- MariaDB


def _start_mariadb() -> Engine:
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None)
    install_db = shutil.which("mariadb-install-db")
    if server is None or install_db is None:
        raise EngineUnavailable(
            "MariaDB is not installed: run `sudo scripts/provision-engines` (installs Debian's mariadb-server)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="wandb-ops-mariadb-"))
    datadir = workdir / "data"
    log_path = workdir / "server.log"
    write_test_certificates(workdir)
    _run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_as_root_flags(),
        ],
        log_path,
        "mariadb-install-db",
    )
    port = free_port()
    command = [
        server,
        "--no-defaults",
        f"--datadir={datadir}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={workdir / 'mysqld.sock'}",
        f"--pid-file={workdir / 'mysqld.pid'}",
        f"--log-error={log_path}",
        f"--ssl-ca={workdir / 'ca.pem'}",
        f"--ssl-cert={workdir / 'server-cert.pem'}",
        f"--ssl-key={workdir / 'server-key.pem'}",
        "--innodb-buffer-pool-size=64M",
        *_as_root_flags(),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = Engine("mariadb", "127.0.0.1", port, workdir / "ca.pem", _process=process, _cleanup=[workdir])
    return _wait_until_ready(engine, log_path)


# ---------------------------------------------------------------- MySQL 9


def _start_mysql9() -> Engine:
    if not (MYSQL9_ROOTFS / "usr/sbin/mysqld").exists():
        raise EngineUnavailable(
            f"no MySQL 9 root filesystem at {MYSQL9_ROOTFS}: run `sudo scripts/provision-engines` "
            "(builds it with debootstrap from Debian sid, about a minute)"
        )
    if os.geteuid() != 0:
        raise EngineUnavailable("MySQL 9 runs from its root filesystem under chroot, which needs root")
    inside = Path(f"/wandb-ops-{uuid.uuid4().hex[:12]}")  # the instance's directory, as seen inside the chroot
    workdir = MYSQL9_ROOTFS / inside.relative_to("/")
    workdir.mkdir()
    log_path = workdir / "server.log"
    write_test_certificates(workdir)
    chroot = ["chroot", str(MYSQL9_ROOTFS), "mysqld", "--no-defaults"]
    _run(
        [*chroot, "--initialize-insecure", "--user=root", f"--datadir={inside / 'data'}"],
        log_path,
        "mysqld --initialize-insecure",
    )
    port = free_port()
    command = [
        *chroot,
        "--user=root",
        f"--datadir={inside / 'data'}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--mysqlx=OFF",
        "--secure-file-priv=",
        f"--socket={inside / 'mysqld.sock'}",
        f"--pid-file={inside / 'mysqld.pid'}",
        f"--log-error={inside / 'server.log'}",
        f"--ssl-ca={inside / 'ca.pem'}",
        f"--ssl-cert={inside / 'server-cert.pem'}",
        f"--ssl-key={inside / 'server-key.pem'}",
        "--innodb-buffer-pool-size=64M",
        "--skip-log-bin",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = Engine("mysql9", "127.0.0.1", port, workdir / "ca.pem", _process=process, _cleanup=[workdir])
    return _wait_until_ready(engine, log_path)
