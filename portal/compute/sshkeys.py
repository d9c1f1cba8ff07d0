"""Parse and check OpenSSH public keys: ed25519, ecdsa (256/384/521) and RSA of 2048 bits or more."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

MAX_KEY_LENGTH = 16 * 1024
ECDSA_BITS = {"nistp256": 256, "nistp384": 384, "nistp521": 521}
MIN_RSA_BITS = 2048


class InvalidKey(ValueError):
    """The text is not an acceptable public key; the message says why in plain words."""


class PrivateKeyPasted(InvalidKey):
    """A private key where a public one belongs: refused, and never to be shown back."""


PRIVATE_KEY_MESSAGE = "That is a private key — paste the .pub file's contents; never share the private key."
# PEM and OpenSSH ("-----BEGIN … PRIVATE KEY-----") and PuTTY's .ppk files.
PRIVATE_KEY_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "Private-Lines:")


def looks_private(text: str) -> bool:
    return any(marker in text for marker in PRIVATE_KEY_MARKERS)


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    bits: int
    fingerprint: str
    comment: str
    normalized: str  # "type base64 [comment]" on one line


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise InvalidKey("The key data is cut short.")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise InvalidKey("The key data is cut short.")
    return blob[offset + 4 : end], end


def parse_public_key(text: str) -> PublicKey:
    text = (text or "").strip()
    if not text:
        raise InvalidKey("Paste a public key, e.g. the contents of ~/.ssh/id_ed25519.pub.")
    if looks_private(text):
        raise PrivateKeyPasted(PRIVATE_KEY_MESSAGE)
    if len(text) > MAX_KEY_LENGTH:
        raise InvalidKey("That is far too long for a public key.")
    if "\n" in text:
        raise InvalidKey("Paste one key on a single line.")
    if any(ord(ch) < 32 and ch != "\t" for ch in text):
        raise InvalidKey("The key contains control characters; copy the whole line again.")
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise InvalidKey("A public key looks like “ssh-ed25519 AAAAC3Nza… you@laptop”.")
    key_type, data = parts[0], parts[1]
    comment = parts[2] if len(parts) > 2 else ""
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey("The key's data is not valid base64; copy the whole line again.") from None
    inner_type, offset = _read_string(blob, 0)
    if inner_type.decode("ascii", "replace") != key_type:
        raise InvalidKey("The key's type does not match its data; copy the whole line again.")

    if key_type == "ssh-ed25519":
        point, offset = _read_string(blob, offset)
        if len(point) != 32:
            raise InvalidKey("This ed25519 key is malformed.")
        bits = 256
    elif key_type.startswith("ecdsa-sha2-"):
        curve, offset = _read_string(blob, offset)
        curve_name = curve.decode("ascii", "replace")
        if curve_name not in ECDSA_BITS or key_type != f"ecdsa-sha2-{curve_name}":
            raise InvalidKey("Only the NIST P-256, P-384 and P-521 ECDSA curves are supported.")
        _point, offset = _read_string(blob, offset)
        bits = ECDSA_BITS[curve_name]
    elif key_type == "ssh-rsa":
        exponent, offset = _read_string(blob, offset)
        modulus, offset = _read_string(blob, offset)
        bits = int.from_bytes(modulus, "big").bit_length()
        if not exponent or bits < MIN_RSA_BITS:
            raise InvalidKey(
                f"This RSA key has {bits} bits; use at least {MIN_RSA_BITS} (or better, ed25519)."
            )
    elif key_type == "ssh-dss":
        raise InvalidKey("DSA keys are no longer safe. Create an ed25519 key: ssh-keygen -t ed25519")
    else:
        raise InvalidKey(
            f"Unsupported key type “{key_type[:40]}”. Use ed25519, ECDSA or RSA (2048 bits or more)."
        )
    if offset != len(blob):
        raise InvalidKey("The key has unexpected extra data; copy the whole line again.")

    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    normalized = f"{key_type} {data}" + (f" {comment}" if comment else "")
    return PublicKey(
        key_type=key_type, bits=bits, fingerprint=f"SHA256:{digest}", comment=comment, normalized=normalized
    )
