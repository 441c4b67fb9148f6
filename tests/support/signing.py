"""Signing as the providers sign, written out in the tests (never through the code under
test): SNS messages with a key and certificate made here, Twilio's X-Twilio-Signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem"


@dataclass
class Signer:
    key: rsa.RSAPrivateKey
    pem: bytes

    @classmethod
    def made(cls, now: datetime) -> Signer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key, self_signed(key, now))

    def sign(
        self, message: dict[str, Any], version: str = "1", cert_url: str = CERT_URL
    ) -> dict[str, Any]:
        """The message with the signature SNS would give it, the canonical string written out."""
        if message["Type"] == "Notification":
            names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
        canonical = "".join(f"{name}\n{message[name]}\n" for name in names if name in message)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(canonical.encode(), padding.PKCS1v15(), algorithm)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": cert_url,
        }


def self_signed(key: rsa.RSAPrivateKey, now: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def twilio_signature(token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's scheme, written out: HMAC-SHA1 over the URL then each field's name and value,
    sorted by name, base64-encoded."""
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
