"""The end-to-end encryption helpers (UPSTREAM §4.5), checked both ways against Python's
``cryptography`` (OpenSSL) and pinned against the original ``wse-server`` 2.5.1.

The vectors marked "from the original" were produced by calling the original package's
functions; the exception types and messages, the accepted argument types and the order of the
checks were probed on it side by side with ours.
"""

import inspect
import threading

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import wse_server
from wse_server._wse_accel import (
    rust_aes_gcm_decrypt,
    rust_aes_gcm_encrypt,
    rust_ecdh_derive_shared_secret,
    rust_ecdh_generate_keypair,
)

INFO = b"wse-encryption/aes-gcm-key"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
KEY = bytes(range(32))

# From the original: a key pair, a peer's public key, the key both sides derived, and a record
# it encrypted under that key.
ORIG_PRIV = bytes.fromhex("598707413d005841aadfbe5b015552689d1da71362d1dd56b87f6359bd7f0ff8")
ORIG_PUB = bytes.fromhex(
    "04f5cac1f47d6e7b372b74729e3ade755dc94c6824c294cdc34c781ae78116e1fc"
    "18132a790ffb947890c84fa4c96829b4ae392b9a175735d7ee7c1e6d5df3d49b"
)
ORIG_PEER_PUB = bytes.fromhex(
    "04ca0cf0b7e9f6d0c6c98b848c3c8bbd142f9739b68c36db2224763ab641ecfdd3"
    "c5a9ca9533879a329ab8e88d5a52813fbdf20c5391eeb5a950355a164b0d02d1"
)
ORIG_KEY = bytes.fromhex("ba7c4c8eb45c349b120f35de54cc4d4c785c7779f2d3915c07949f7742bf5c48")
ORIG_RECORD = bytes.fromhex(
    "9eaa4131618357424767e5de2ec97a304abb97e363e6f48896b7619e181d1f8ce143"
    "c940d7c04b55cf6f485765453f291842c34cd7"
)
ORIG_PLAINTEXT = b'{"t":"hello","p":{"n":1}}'
# From the original: the key it derives from the 24-byte private key bytes(range(1, 25)) (the
# same as from that scalar padded to 32 bytes) and ORIG_PEER_PUB.
ORIG_SHORT_SCALAR_KEY = bytes.fromhex(
    "e5cb94c1c6485034273f15420671acad97eeb1e47be36f06300f6c80dd9508d3"
)


def their_key(private_value: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(private_value, ec.SECP256R1())


def their_public_bytes(key, compressed=False) -> bytes:
    fmt = (
        serialization.PublicFormat.CompressedPoint
        if compressed
        else serialization.PublicFormat.UncompressedPoint
    )
    return key.public_key().public_bytes(serialization.Encoding.X962, fmt)


def their_session_key(private: ec.EllipticCurvePrivateKey, peer_public: bytes) -> bytes:
    """ECDH + HKDF-SHA256 (no salt, the WSE info string), computed by ``cryptography``."""
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public)
    shared = private.exchange(ec.ECDH(), peer)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(shared)


# --- the package --------------------------------------------------------------------------


def test_the_helpers_are_exported_under_the_original_names_and_signatures():
    for name in (
        "rust_ecdh_generate_keypair",
        "rust_ecdh_derive_shared_secret",
        "rust_aes_gcm_encrypt",
        "rust_aes_gcm_decrypt",
    ):
        assert name in wse_server.__all__
        assert getattr(wse_server, name) is globals()[name]
    signatures = {
        f.__name__: str(inspect.signature(f))
        for f in (
            rust_ecdh_generate_keypair,
            rust_ecdh_derive_shared_secret,
            rust_aes_gcm_encrypt,
            rust_aes_gcm_decrypt,
        )
    }
    # As the original reports them (inspect.signature on 2.5.1).
    assert signatures == {
        "rust_ecdh_generate_keypair": "()",
        "rust_ecdh_derive_shared_secret": "(private_key, peer_public_key)",
        "rust_aes_gcm_encrypt": "(key, plaintext)",
        "rust_aes_gcm_decrypt": "(key, data)",
    }


# --- key pairs ----------------------------------------------------------------------------


def test_a_generated_key_pair_is_a_valid_p256_key_for_cryptography():
    private, public = rust_ecdh_generate_keypair()
    assert type(private) is bytes and type(public) is bytes
    assert len(private) == 32 and len(public) == 65 and public[0] == 0x04
    value = int.from_bytes(private, "big")
    assert 1 <= value < P256_ORDER
    # cryptography computes the same public key from our scalar, and parses our public key
    assert their_public_bytes(their_key(value)) == public
    parsed = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    assert parsed.public_numbers() == their_key(value).public_key().public_numbers()


def test_key_pairs_are_fresh_each_time():
    pairs = {rust_ecdh_generate_keypair() for _ in range(20)}
    assert len(pairs) == 20
    assert len({priv for priv, _ in pairs}) == 20


def test_the_original_key_pair_is_consistent_here():
    assert their_public_bytes(their_key(int.from_bytes(ORIG_PRIV, "big"))) == ORIG_PUB


# --- key derivation -----------------------------------------------------------------------


def test_derivation_agrees_with_cryptography_on_both_sides():
    ours_priv, ours_pub = rust_ecdh_generate_keypair()
    theirs = ec.generate_private_key(ec.SECP256R1())
    theirs_pub = their_public_bytes(theirs)

    ours = rust_ecdh_derive_shared_secret(ours_priv, theirs_pub)
    assert type(ours) is bytes and len(ours) == 32
    # their side, from our public key
    assert their_session_key(theirs, ours_pub) == ours
    # our side recomputed by cryptography from our scalar
    assert their_session_key(their_key(int.from_bytes(ours_priv, "big")), theirs_pub) == ours


def test_two_of_our_pairs_agree_and_the_key_is_the_hkdf_output_not_the_raw_secret():
    a_priv, a_pub = rust_ecdh_generate_keypair()
    b_priv, b_pub = rust_ecdh_generate_keypair()
    ab = rust_ecdh_derive_shared_secret(a_priv, b_pub)
    assert ab == rust_ecdh_derive_shared_secret(b_priv, a_pub)
    a = their_key(int.from_bytes(a_priv, "big"))
    b = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b_pub)
    raw = a.exchange(ec.ECDH(), b)
    assert ab != raw


def test_derivation_matches_the_original():
    assert rust_ecdh_derive_shared_secret(ORIG_PRIV, ORIG_PEER_PUB) == ORIG_KEY
    assert their_session_key(their_key(int.from_bytes(ORIG_PRIV, "big")), ORIG_PEER_PUB) == (
        ORIG_KEY
    )


def test_compressed_peer_keys_are_accepted():
    theirs = ec.generate_private_key(ec.SECP256R1())
    ours_priv, ours_pub = rust_ecdh_generate_keypair()
    compressed = their_public_bytes(theirs, compressed=True)
    assert len(compressed) == 33 and compressed[0] in (2, 3)
    key = rust_ecdh_derive_shared_secret(ours_priv, compressed)
    assert key == rust_ecdh_derive_shared_secret(ours_priv, their_public_bytes(theirs))
    assert key == their_session_key(theirs, ours_pub)
    # the original's own peer key, compressed by cryptography
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ORIG_PEER_PUB)
    packed = peer.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert rust_ecdh_derive_shared_secret(ORIG_PRIV, packed) == ORIG_KEY


def test_a_private_key_of_24_to_31_bytes_is_a_scalar_without_its_leading_zeros():
    # The original accepts it (the p256 crate pads it); 23 bytes and fewer are refused.
    short = bytes(range(1, 25))
    assert rust_ecdh_derive_shared_secret(short, ORIG_PEER_PUB) == ORIG_SHORT_SCALAR_KEY
    padded = bytes(8) + short
    assert rust_ecdh_derive_shared_secret(padded, ORIG_PEER_PUB) == ORIG_SHORT_SCALAR_KEY
    assert their_session_key(their_key(int.from_bytes(short, "big")), ORIG_PEER_PUB) == (
        ORIG_SHORT_SCALAR_KEY
    )
    for n in range(24, 33):
        scalar = (7).to_bytes(n, "big")
        assert rust_ecdh_derive_shared_secret(scalar, ORIG_PEER_PUB) == their_session_key(
            their_key(7), ORIG_PEER_PUB
        )
    with pytest.raises(ValueError, match="^Invalid private key: crypto error$"):
        rust_ecdh_derive_shared_secret((7).to_bytes(23, "big"), ORIG_PEER_PUB)


@pytest.mark.parametrize(
    "private_key",
    [
        b"",
        bytes(32),  # zero
        P256_ORDER.to_bytes(32, "big"),  # n
        (P256_ORDER + 1).to_bytes(32, "big"),
        b"\xff" * 32,
        bytes(24),  # zero, in the short form
        b"\x00" + ORIG_PRIV,  # 33 bytes, even with a leading zero
        ORIG_PRIV + b"\x00",
    ],
)
def test_bad_private_keys_are_value_errors(private_key):
    with pytest.raises(ValueError, match="^Invalid private key: crypto error$"):
        rust_ecdh_derive_shared_secret(private_key, ORIG_PEER_PUB)


def test_the_largest_scalar_is_valid():
    key = rust_ecdh_derive_shared_secret((P256_ORDER - 1).to_bytes(32, "big"), ORIG_PEER_PUB)
    assert key == their_session_key(their_key(P256_ORDER - 1), ORIG_PEER_PUB)


@pytest.mark.parametrize(
    "peer",
    [
        b"",
        b"\x00",  # the point at infinity
        ORIG_PEER_PUB[:64],
        ORIG_PEER_PUB + b"\x00",
        b"\x04" * 65,  # not on the curve
        b"\x05" + ORIG_PEER_PUB[1:],  # bad tag
        bytes([6 + (ORIG_PEER_PUB[64] & 1)]) + ORIG_PEER_PUB[1:],  # hybrid: the original refuses
        b"\x02" + b"\xff" * 32,  # x beyond the field
        ORIG_PEER_PUB[1:33],  # 32 bytes: x alone
    ],
)
def test_bad_peer_keys_are_value_errors(peer):
    with pytest.raises(ValueError, match="^Invalid peer public key: crypto error$"):
        rust_ecdh_derive_shared_secret(ORIG_PRIV, peer)


def test_the_private_key_is_checked_before_the_peer_key():
    with pytest.raises(ValueError, match="^Invalid private key"):
        rust_ecdh_derive_shared_secret(b"", b"")


# --- AES-GCM ------------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", b'{"t":"hello"}', bytes(range(256)) * 300])
def test_cryptography_decrypts_our_records_and_we_decrypt_theirs(plaintext):
    record = rust_aes_gcm_encrypt(KEY, plaintext)
    assert type(record) is bytes and len(record) == 12 + len(plaintext) + 16
    assert AESGCM(KEY).decrypt(record[:12], record[12:], None) == plaintext

    iv = bytes(range(100, 112))
    theirs = iv + AESGCM(KEY).encrypt(iv, plaintext, None)
    assert rust_aes_gcm_decrypt(KEY, theirs) == plaintext


def test_records_use_a_fresh_iv_each_time():
    ivs = {rust_aes_gcm_encrypt(KEY, b"same")[:12] for _ in range(200)}
    assert len(ivs) == 200


def test_we_decrypt_the_originals_record_with_the_key_it_derived():
    assert rust_aes_gcm_decrypt(ORIG_KEY, ORIG_RECORD) == ORIG_PLAINTEXT
    assert AESGCM(ORIG_KEY).decrypt(ORIG_RECORD[:12], ORIG_RECORD[12:], None) == ORIG_PLAINTEXT


def test_a_full_exchange_with_cryptography_as_the_peer():
    ours_priv, ours_pub = rust_ecdh_generate_keypair()
    theirs = ec.generate_private_key(ec.SECP256R1())
    ours_key = rust_ecdh_derive_shared_secret(ours_priv, their_public_bytes(theirs, True))
    their_aes = AESGCM(their_session_key(theirs, ours_pub))
    record = rust_aes_gcm_encrypt(ours_key, b'{"t":"chat","p":{"text":"hi"}}')
    assert their_aes.decrypt(record[:12], record[12:], None) == b'{"t":"chat","p":{"text":"hi"}}'
    iv = b"\x01" * 12
    assert rust_aes_gcm_decrypt(ours_key, iv + their_aes.encrypt(iv, b"pong", None)) == b"pong"


@pytest.mark.parametrize("position", [0, 11, 12, 20, -16, -1])
def test_a_flipped_bit_anywhere_is_a_runtime_error(position):
    record = bytearray(rust_aes_gcm_encrypt(KEY, b"attack at dawn"))
    record[position] ^= 0x01
    with pytest.raises(RuntimeError, match="^Decrypt failed: aead::Error$"):
        rust_aes_gcm_decrypt(KEY, bytes(record))
    with pytest.raises(InvalidTag):
        AESGCM(KEY).decrypt(bytes(record[:12]), bytes(record[12:]), None)


def test_the_wrong_key_and_a_bare_iv_and_tag_are_runtime_errors():
    record = rust_aes_gcm_encrypt(KEY, b"secret")
    with pytest.raises(RuntimeError, match="^Decrypt failed: aead::Error$"):
        rust_aes_gcm_decrypt(bytes(32), record)
    # 28 bytes passes the length check; only authentication can fail then
    with pytest.raises(RuntimeError, match="^Decrypt failed: aead::Error$"):
        rust_aes_gcm_decrypt(KEY, record[:28])
    assert rust_aes_gcm_decrypt(KEY, rust_aes_gcm_encrypt(KEY, b"")) == b""


@pytest.mark.parametrize("key", [b"", KEY[:16], KEY[:24], KEY[:31], KEY + b"\x00"])
def test_a_key_that_is_not_32_bytes_is_a_value_error(key):
    # AES-128 and AES-192 keys too: the helpers are AES-256 only
    with pytest.raises(ValueError, match="^AES-GCM-256 key must be 32 bytes$"):
        rust_aes_gcm_encrypt(key, b"x")
    with pytest.raises(ValueError, match="^AES-GCM-256 key must be 32 bytes$"):
        rust_aes_gcm_decrypt(key, rust_aes_gcm_encrypt(KEY, b"x"))


@pytest.mark.parametrize("length", [0, 1, 12, 27])
def test_data_shorter_than_iv_and_tag_is_a_value_error(length):
    short = rust_aes_gcm_encrypt(KEY, b"")[:length]
    message = r"^Encrypted data too short \(min 28 bytes: 12 IV \+ 16 tag\)$"
    with pytest.raises(ValueError, match=message):
        rust_aes_gcm_decrypt(KEY, short)
    # the length is checked before the key, as the original does
    with pytest.raises(ValueError, match=message):
        rust_aes_gcm_decrypt(b"short key", short)


# --- argument types (as the original: bytes only) -----------------------------------------


@pytest.mark.parametrize(
    "make",
    [bytearray, memoryview, lambda b: b.decode("latin-1"), list, lambda b: None],
    ids=["bytearray", "memoryview", "str", "list", "None"],
)
def test_only_bytes_are_accepted(make):
    private, public = rust_ecdh_generate_keypair()
    record = rust_aes_gcm_encrypt(KEY, b"x")
    calls = [
        lambda: rust_ecdh_derive_shared_secret(make(private), public),
        lambda: rust_ecdh_derive_shared_secret(private, make(public)),
        lambda: rust_aes_gcm_encrypt(make(KEY), b"x"),
        lambda: rust_aes_gcm_encrypt(KEY, make(b"x")),
        lambda: rust_aes_gcm_decrypt(make(KEY), record),
        lambda: rust_aes_gcm_decrypt(KEY, make(record)),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="is not an instance of 'bytes'"):
            call()


def test_arguments_by_keyword_and_arity_as_the_original():
    private, _ = rust_ecdh_generate_keypair()
    assert (
        rust_ecdh_derive_shared_secret(private_key=ORIG_PRIV, peer_public_key=ORIG_PEER_PUB)
        == ORIG_KEY
    )
    record = rust_aes_gcm_encrypt(key=KEY, plaintext=b"kw")
    assert rust_aes_gcm_decrypt(key=KEY, data=record) == b"kw"
    with pytest.raises(TypeError):
        rust_ecdh_generate_keypair(1)
    with pytest.raises(TypeError, match="peer_public_key"):
        rust_ecdh_derive_shared_secret(private)


# --- threads ------------------------------------------------------------------------------


def test_concurrent_use_from_threads_gives_correct_results():
    """The helpers release the GIL around the curve arithmetic and long AES runs; threads
    calling them at once each get their own, correct answers."""
    theirs = ec.generate_private_key(ec.SECP256R1())
    theirs_pub = their_public_bytes(theirs)
    big = bytes(range(256)) * 80  # 20 KiB: over the 16 KiB GIL-release threshold
    failures = []

    def worker():
        try:
            for _ in range(3):
                priv, pub = rust_ecdh_generate_keypair()
                key = rust_ecdh_derive_shared_secret(priv, theirs_pub)
                assert key == their_session_key(theirs, pub)
                record = rust_aes_gcm_encrypt(key, big)
                assert AESGCM(key).decrypt(record[:12], record[12:], None) == big
                assert rust_aes_gcm_decrypt(key, record) == big
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
