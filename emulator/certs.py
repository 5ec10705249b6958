"""A self-signed TLS certificate for the local servers, made at start.

The certificate (SAN ``IP:127.0.0.1``, ``DNS:localhost`` and the Azure host names the stand-ins answer
for through the local proxy: ``*.vault.azure.net``, ``*.azure-api.net``, ``*.regional.azure-api.net``)
is its own CA: clients trust it through a CA bundle (``REQUESTS_CA_BUNDLE`` or ``connection_verify=``),
so production code needs no test-only switch such as ``enforce_https=False``. The emulator also signs
the Key Vault certificates it makes with it (``emulator/keyvault``), so they chain to the same bundle.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Host names served through the emulator's proxy (emulator/proxy.py); a certificate without them is
# made again.
PROXIED_DNS_NAMES = ("*.vault.azure.net", "*.azure-api.net", "*.regional.azure-api.net")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    @property
    def ca_bundle(self) -> Path:
        # Self-signed: the certificate is its own trust anchor.
        return self.cert


def ensure_tls_files(directory: Path, *, days: int = 7) -> TlsFiles:
    """Return the certificate in ``directory``, making a new one if missing or about to expire."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "localhost-cert.pem", directory / "localhost-key.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(hours=12) and _has_names(cert):
            return TlsFiles(cert_path, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apim-dr local Azure")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    *(x509.DNSName(name) for name in PROXIED_DNS_NAMES),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    tmp_key, tmp_cert = key_path.with_suffix(".tmp"), cert_path.with_suffix(".tmp")
    tmp_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    tmp_key.chmod(0o600)
    tmp_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp_key.replace(key_path)
    tmp_cert.replace(cert_path)
    return TlsFiles(cert_path, key_path)


def _has_names(cert: x509.Certificate) -> bool:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(PROXIED_DNS_NAMES) <= set(names.get_values_for_type(x509.DNSName))
