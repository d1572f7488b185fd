#!/usr/bin/env python3
"""Cross-implementation test vectors for wse-core's crypto module, from Python's `cryptography`
(OpenSSL underneath) and the standard library: an implementation independent of RustCrypto.

Prints Rust constants; `vectors.rs` holds them, pasted unchanged, and checks that our code gives
the same bytes both ways (same keys and shared key from the same scalars; we decrypt their
AES-GCM record; ours under the same IV is byte-identical, so they decrypt it too; their
signature over the canonical JSON verifies with ours and ours equals theirs).

How it was run (cryptography 50.0.2, CPython 3 on the development machine):

    python3 -m venv /work/venv-crypto && /work/venv-crypto/bin/pip install cryptography
    /work/venv-crypto/bin/python core/src/crypto/vectors.py

Nothing here is random: the private scalars, the IV and the signing nonce are fixed, so a re-run
prints the same constants.
"""
import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def const(name, value):
    if isinstance(value, bytes):
        value = value.hex()
    value = value.replace("\\", "\\\\").replace('"', '\\"')  # a Rust string literal
    print(f'pub(super) const {name}: &str = "{value}";')


def hkdf(ikm, info, length=32, salt=None):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def public(priv):
    pub = priv.public_key()
    return (pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
            pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))


# Two fixed private scalars (both in 1..n).
a_scalar = bytes(range(1, 33))
b_scalar = bytes(range(0x21, 0x41))
a = ec.derive_private_key(int.from_bytes(a_scalar, "big"), ec.SECP256R1())
b = ec.derive_private_key(int.from_bytes(b_scalar, "big"), ec.SECP256R1())
a_pub, a_pub_c = public(a)
b_pub, b_pub_c = public(b)
shared = a.exchange(ec.ECDH(), b.public_key())
assert shared == b.exchange(ec.ECDH(), a.public_key())
session_key = hkdf(shared, b"wse-encryption/aes-gcm-key")

const("A_PRIVATE", a_scalar)
const("A_PUBLIC_B64", base64.b64encode(a_pub).decode())
const("A_PUBLIC_COMPRESSED", a_pub_c)
const("B_PRIVATE", b_scalar)
const("B_PUBLIC_B64", base64.b64encode(b_pub).decode())
const("B_PUBLIC_COMPRESSED", b_pub_c)
const("SHARED_X", shared)
const("SESSION_KEY", session_key)

# AES-256-GCM under the session key, fixed IV, no AAD: IV || ciphertext || tag.
iv = bytes(range(12))
plaintext = '{"c":"U","p":{"price":101.5,"sym":"ÅBC"},"t":"tick","v":1}'.encode()
record = iv + AESGCM(session_key).encrypt(iv, plaintext, None)
assert AESGCM(session_key).decrypt(record[:12], record[12:], None) == plaintext
const("IV", iv)
const("PLAINTEXT", plaintext.decode())
const("RECORD", record)

# Signing: key from the session key, sig over the canonical envelope (docs/encryption.md).
signing_key = hkdf(session_key, b"wse-signing/hmac-key")
envelope = {"t": "order_filled", "c": "U", "v": 1, "id": "0190a0b1-0000-7000-8000-000000000001",
            "p": {"qty": 3, "price": -12, "sym": "ÅBC", "tags": ["a", "b\n\"c\"\u0001"],
                  "meta": {"z": None, "y": True}}}
ts_ms = 1764000000123
nonce = bytes(range(0xa0, 0xb0))
canonical = json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
prefix = f"v1:{ts_ms}:{nonce.hex()}:"
mac = hmac.new(signing_key, prefix.encode() + canonical.encode(), hashlib.sha256).digest()
const("SIGNING_KEY", signing_key)
const("ENVELOPE", json.dumps(envelope, ensure_ascii=False))
const("CANONICAL", canonical)
print(f"pub(super) const SIG_TS_MS: u64 = {ts_ms};")
const("SIG_NONCE", nonce)
const("SIG", prefix + base64.b64encode(mac).decode())

# UPSTREAM §5 helpers: rust_sha256, rust_hmac_sha256, rust_sign_message.
payload_json = '{"event":"ping","n":1}'
const("HELPER_PAYLOAD", payload_json)
const("HELPER_SHA256", hashlib.sha256(payload_json.encode()).hexdigest())
const("HELPER_HMAC", hmac.new(b"secret-key", payload_json.encode(), hashlib.sha256).digest())
const("HELPER_SIGN_MESSAGE", hmac.new(b"secret-key", hashlib.sha256(payload_json.encode()).hexdigest().encode(),
                                      hashlib.sha256).hexdigest())
