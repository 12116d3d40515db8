"""Content Credentials for simulated images (off by default): a C2PA manifest signed with a
certificate chain made on the spot, so the demo and the tests can show the mark offline.

The chain is a throwaway CA and a leaf under it (c2pa-rs refuses a self-signed leaf): an
ECDSA P-256 leaf with ``digitalSignature`` key usage and the e-mail protection EKU, which C2PA
accepts for signing. No trust list knows the CA, so readers report the signer as untrusted
while the signature and the hard binding validate: exactly what cometnb checks. Needs
``cometnb[c2pa]`` (c2pa-python, which brings ``cryptography``).

Example::

    >>> signer = SimSigner()  # doctest: +SKIP
    >>> signed = signer.sign(png_bytes, "image/png")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import threading
from typing import Any

__all__ = ["DIGITAL_SOURCE_TYPE", "ENV", "SimSigner", "signing_wanted", "throwaway_chain"]

ENV = "COMETNB_SIM_C2PA"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ISSUER = "cometnb simulator (test CA)"


def signing_wanted(flag: bool | None) -> bool:
    """``flag`` when given, else ``$COMETNB_SIM_C2PA`` (``1``/``true``/``yes``)."""
    if flag is not None:
        return flag
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


def throwaway_chain(organisation: str = ISSUER) -> tuple[bytes, bytes]:
    """``(certificate chain PEM: leaf then CA, leaf private key PEM)``, valid for 30 days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            ]
        )

    def usage(*, sign: bool, certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=sign,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=certs,
            crl_sign=certs,
            encipher_only=False,
            decipher_only=False,
        )

    now = _dt.datetime.now(_dt.timezone.utc)
    start, end = now - _dt.timedelta(days=1), now + _dt.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("cometnb test root CA")

    def certificate(
        subject: x509.Name, key: ec.EllipticCurvePrivateKey, *, ca: bool
    ) -> x509.CertificateBuilder:
        """What both certificates hold: issued by the CA for the same window; the CA signs
        certificates, the leaf signs content."""
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(usage(sign=not ca, certs=ca), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    ca = certificate(ca_name, ca_key, ca=True).sign(ca_key, hashes.SHA256())
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        certificate(name("cometnb simulator signer"), key, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, private


class SimSigner:
    """Signs image bytes with a C2PA manifest: claim generator ``cometnb-simulator``,
    digital source type ``trainedAlgorithmicMedia`` (what OpenAI's API images say)."""

    def __init__(self, organisation: str = ISSUER) -> None:
        import c2pa

        chain, private = throwaway_chain(organisation)
        self._c2pa: Any = c2pa
        self._signer: Any = c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None)
        )
        self._lock = threading.Lock()  # one native signer, used by the handler threads in turn

    def manifest(self, title: str = "simulated image") -> dict[str, Any]:
        from cometnb._version import __version__

        return {
            "claim_generator_info": [{"name": "cometnb-simulator", "version": __version__}],
            "title": title,
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE}
                        ]
                    },
                }
            ],
        }

    def sign(self, data: bytes, mime: str, title: str = "simulated image") -> bytes:
        """``data`` with an embedded, signed manifest (a new file; ``data`` is not changed)."""
        out = io.BytesIO()
        with self._lock, self._c2pa.Builder(self.manifest(title)) as builder:
            builder.sign(self._signer, mime, io.BytesIO(data), out)
        return out.getvalue()

    def close(self) -> None:
        self._signer.close()
