"""Module functions: JWT helpers (checked against the server's own validator), zlib, hashes."""

import asyncio
import hashlib
import hmac
import json
import time
import zlib

import pytest

from conftest import SECRET, connect, run, wait_events
from wse_server._wse_accel import (
    rust_compress,
    rust_decompress,
    rust_hmac_sha256,
    rust_jwt_decode,
    rust_jwt_encode,
    rust_sha256,
    rust_should_compress,
    rust_sign_message,
)

NOW = int(time.time())
OTHER = b"another-secret-that-is-32-bytes-long!!"


def test_a_minted_token_is_accepted_by_the_server_handshake(make_server):
    server = make_server(jwt_secret=SECRET, jwt_issuer="my-app", jwt_audience="my-api")
    tok = rust_jwt_encode(
        {"sub": "user-1", "iss": "my-app", "aud": "my-api", "exp": NOW + 60, "iat": NOW}, SECRET
    )

    async def go():
        ws = await connect(server, additional_headers={"Authorization": f"Bearer {tok}"})
        assert json.loads(await ws.recv())["t"] == "server_ready"
        await ws.close()

    run(go())
    assert wait_events(server, 1)[0][2] == "user-1"


def test_jwt_round_trip_with_rotation_issuer_audience_and_kid():
    claims = {"sub": "u", "exp": NOW + 60, "iss": "i", "aud": "a", "n": 2**70}
    tok = rust_jwt_encode(claims, SECRET, "HS256", "k1")
    assert rust_jwt_decode(tok, SECRET, issuer="i", audience="a", key_id="k1") == {
        **claims,
        "n": str(2**70),
    }
    # rotated: the old secret still verifies as previous_secret
    assert rust_jwt_decode(tok, OTHER, previous_secret=SECRET)["sub"] == "u"


@pytest.mark.parametrize(
    "claims, kwargs",
    [
        ({"sub": "u", "exp": NOW - 3600}, {}),  # expired beyond the 30 s leeway
        ({"sub": "u"}, {}),  # exp is required
        ({"sub": "u", "exp": NOW + 60, "iss": "x"}, {"issuer": "i"}),
        ({"sub": "u", "exp": NOW + 60}, {"issuer": "i"}),  # configured iss is required (D4)
        ({"sub": "u", "exp": NOW + 60}, {"key_id": "k1"}),
        ({"sub": "u", "exp": NOW + 60}, {"algorithm": "HS512"}),  # None, not an exception
    ],
)
def test_jwt_decode_returns_none_for_every_failure(claims, kwargs):
    tok = rust_jwt_encode(claims, SECRET)
    assert rust_jwt_decode(tok, SECRET, **kwargs) is None


def test_jwt_decode_rejects_a_token_signed_with_another_secret_and_garbage():
    tok = rust_jwt_encode({"sub": "u", "exp": NOW + 60}, OTHER)
    assert rust_jwt_decode(tok, SECRET) is None
    assert rust_jwt_decode("not.a.token", SECRET) is None
    assert rust_jwt_decode("x" * 10_000, SECRET) is None


def test_jwt_encode_errors_match_the_original():
    with pytest.raises(ValueError, match="Unsupported algorithm: HS512"):
        rust_jwt_encode({"sub": "u"}, SECRET, "HS512")
    with pytest.raises(RuntimeError, match="JWT encode error"):
        rust_jwt_encode({"sub": "u"}, b"short")
    with pytest.raises(RuntimeError, match="JWT encode error"):
        rust_jwt_encode({"sub": "u"}, b"not a pem", "RS256")


def test_compress_round_trips_and_checks_the_level():
    data = b"wse " * 1000
    packed = rust_compress(data, 6)
    assert zlib.decompress(packed) == data and len(packed) < len(data)
    assert rust_decompress(zlib.compress(data)) == data
    for level in (0, 10, -1):
        with pytest.raises(ValueError, match="between 1 and 9"):
            rust_compress(data, level)


def test_decompress_refuses_bombs_and_corrupt_input():
    bomb = zlib.compress(b"\0" * (11 << 20))
    with pytest.raises(RuntimeError, match="exceeds"):
        rust_decompress(bomb)
    assert len(rust_decompress(zlib.compress(b"\0" * (10 << 20)))) == 10 << 20
    with pytest.raises(RuntimeError):
        rust_decompress(b"garbage")


def test_should_compress_is_strictly_longer_than_the_threshold():
    assert rust_should_compress(b"abc", 2) is True
    assert rust_should_compress(b"abc", 3) is False
    assert rust_should_compress(b"x" * 1025) is True


def test_hashes_match_the_standard_library():
    assert rust_sha256(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert rust_hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"  # RFC 4231 case 2
    )
    payload = '{"a":1}'
    inner = hashlib.sha256(payload.encode()).hexdigest().encode()
    assert rust_sign_message(payload, b"k") == hmac.new(b"k", inner, hashlib.sha256).hexdigest()
    with pytest.raises(TypeError):
        rust_sha256("a str is not bytes")
