"""A throw-away certificate authority and a broker certificate, made with openssl.

For a local broker with a TLS listener (tests, trying SASL_SSL out): never for production,
where the cluster's own CA signs the brokers. Kafka 3.9 reads PEM directly
(``ssl.keystore.type=PEM``), so no Java keystore is needed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from fraudstream.deploy.local.errors import StackError
from fraudstream.deploy.local.kafka import require_tool

OPENSSL_HINT = "Install openssl (Debian: apt-get install openssl)."
#: Short-lived on purpose: these certificates exist for one test run or one local stack.
VALID_DAYS = 30


@dataclass(frozen=True)
class LocalPki:
    """The files of a local CA and one broker identity signed by it."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        """The CA certificate: what clients trust (FRAUDSTREAM_KAFKA_SSL_CAFILE)."""
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        """The broker's unencrypted PKCS#8 key followed by its certificate (a PEM keystore)."""
        return self.directory / "broker.pem"

    def client_identity(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) of a client signed by the CA, made on first use (mutual TLS)."""
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        if not cert.exists():
            _sign(self, name, cert, key, extensions="extendedKeyUsage=clientAuth")
        return cert, key


def make_local_pki(directory: Path, host: str = "127.0.0.1") -> LocalPki:
    """Create a CA and a broker certificate valid for ``host`` (and localhost) in ``directory``.

    Idempotent: an existing CA is reused, so a restarted broker keeps the certificate clients
    already trust.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = LocalPki(directory)
    if pki.broker_keystore.exists():
        return pki
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki.ca_key),
             "-out", str(pki.ca_file), "-days", str(VALID_DAYS),
             "-subj", "/CN=fraudstream-local-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    cert, key = directory / "broker.crt", directory / "broker.key"
    # Clients check the broker's name (ssl.endpoint.identification.algorithm=https, Python's
    # check_hostname) against the address they dialled: an IP needs an IP SAN.
    san = f"IP:{host}" if _is_ip(host) else f"DNS:{host}"
    _sign(pki, "broker", cert, key,
          extensions=f"subjectAltName={san},DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth")
    pki.broker_keystore.write_text(key.read_text() + cert.read_text())
    pki.broker_keystore.chmod(0o600)
    return pki


def _sign(pki: LocalPki, name: str, cert: Path, key: Path, extensions: str) -> None:
    csr = pki.directory / f"{name}.csr"
    ext = pki.directory / f"{name}.ext"
    ext.write_text(extensions + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(pki.ca_file), "-CAkey", str(pki.ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", str(VALID_DAYS),
             "-extfile", str(ext))
    key.chmod(0o600)


def _openssl(*args: str) -> None:
    openssl = require_tool("openssl", OPENSSL_HINT)
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr[-2000:]}")


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
