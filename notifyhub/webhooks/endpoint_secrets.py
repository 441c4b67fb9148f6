"""Endpoint secrets at rest: encrypted with Fernet under a key derived from the settings.

Fernet (from ``cryptography``) is authenticated encryption, so a ciphertext altered in
the database is refused rather than decrypted to garbage.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, MultiFernet


def _fernet(key_material: str) -> Fernet:
    # Any passphrase of the operator's becomes the 32-byte key Fernet wants.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key_material.encode()).digest()))


def encrypt(key_material: str, secret: str) -> bytes:
    return _fernet(key_material).encrypt(secret.encode())


def decrypt(key_materials: str | Sequence[str], ciphertext: bytes) -> str:
    """The secret, decrypted with whichever key encrypted it (the current key and the one
    before a rotation)."""
    keys = [key_materials] if isinstance(key_materials, str) else list(key_materials)
    return MultiFernet([_fernet(key) for key in keys]).decrypt(ciphertext).decode()
