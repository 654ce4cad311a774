"""A throw-away PKI for the TLS tests, made with ``cryptography``: CAs, a server and client certificates.

``make_pki(dir)`` writes PEM files: ``ca.pem`` (the trusted CA), ``server.pem``/``server.key``
(for 127.0.0.1 and localhost, signed by the CA), ``internal.pem``/``internal.key`` (a server
certificate for the name verdict.internal only), ``alice.pem``/``alice.key`` and
``bob.pem``/``bob.key``, ``probe.pem``/``probe.key`` (client certificates with CN alice, bob
and probe, signed by the CA), ``carol-san.pem``/``carol-san.key`` (no CN, only the SAN
carol.clients.example),
``other-ca.pem`` (an unrelated CA) and ``mallory.pem``/``mallory.key`` (a client certificate
signed by the unrelated CA). EC P-256 keys: quick to make.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files ``make_pki`` wrote."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str | None, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *, server: bool, sans: list[x509.GeneralName] | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn) if cn else x509.Name([]))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=not cn)
    return builder.sign(ca[1], hashes.SHA256()), key


def _write(dir: Path, stem: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
    (dir / f"{stem}.pem").write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
    _write_key(dir / f"{stem}.key", pair[1])


def make_pki(dir: Path) -> Pki:
    """Write the CAs and certificates described in the module docstring into ``dir``."""
    dir.mkdir(parents=True, exist_ok=True)
    ca = _ca("Verdict Test CA")
    other = _ca("Some Other CA")
    _write(dir, "ca", ca)
    _write(dir, "other-ca", other)
    server_sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    _write(dir, "server", _leaf("localhost", ca, server=True, sans=server_sans))
    _write(dir, "internal", _leaf("verdict.internal", ca, server=True, sans=[x509.DNSName("verdict.internal")]))
    _write(dir, "alice", _leaf("alice", ca, server=False))
    _write(dir, "bob", _leaf("bob", ca, server=False))
    _write(dir, "probe", _leaf("probe", ca, server=False))
    _write(dir, "carol-san", _leaf(None, ca, server=False, sans=[x509.DNSName("carol.clients.example")]))
    _write(dir, "mallory", _leaf("alice", other, server=False))  # claims alice's name, wrong CA
    return Pki(dir)
