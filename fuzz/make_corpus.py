#!/usr/bin/env python3
"""Writes the seed corpus of the byte-level fuzz targets (tests/__fuzz__/<target>/corpus).

Real inputs only: a client_hello, C:/M:/E: frames, JWTs minted with the crate's test secret
(wse_fuzz::TEST_SECRET), an upgrade request, a masked text frame. Byte 0 of most files selects
the target's raw mode or configuration (see each target's module doc). Re-run after changing a
target's input layout: python3 fuzz/make_corpus.py
"""
import base64, hashlib, hmac, json, os, struct, zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", "__fuzz__")
SECRET = b"wse-fuzz-only-test-secret-0123456789abcdef"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, key=SECRET, header=None):
    header = header or {"typ": "JWT", "alg": "HS256"}
    msg = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(key, msg.encode(), hashlib.sha256).digest())
    return f"{msg}.{sig}"


def masked(opcode, payload, mask=b"\x37\xfa\x21\x3d", fin=True):
    assert len(payload) < 126
    out = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask
    return out + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def write(target, name, data):
    d = os.path.join(ROOT, target, "corpus")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


hello = json.dumps({"c": "WSE", "t": "client_hello", "p": {"client_version": "2.0.7",
        "protocol_version": 2, "features": {"compression": True, "encryption": False}}})
write("inbound_text", "client_hello", hello)
write("inbound_text", "ping", '{"c":"WSE","t":"ping","p":{"timestamp":1764000000123},"v":1}')
write("inbound_text", "prefixed_chat", 'WSE{"t":"chat","p":{"text":"hi"},"id":"m1","seq":3}')
write("inbound_text", "aliases_and_stamp",
      '{"type":"update","payload":[1,2],"tp":"chat:a","e":"0000abcd","o":7}')

CAP_1MIB = 7 << 1  # bits 1-3 of byte 0: the 1 MiB cap; bit 0: msgpack connection
write("inbound_binary", "c_frame", bytes([CAP_1MIB]) + b"C:" + zlib.compress(hello.encode(), 1))
write("inbound_binary", "m_frame", bytes([CAP_1MIB]) + b"M:\x82\xa1t\xa4chat\xa1p\x81\xa1n\x01")
write("inbound_binary", "raw_msgpack_on_msgpack_conn", bytes([CAP_1MIB | 1]) + b"\x92\x01\xc3")
write("inbound_binary", "e_frame", bytes([CAP_1MIB]) + b"E:" + bytes(range(32)))
write("inbound_binary", "zlib_bomb", bytes([CAP_1MIB | 0x10]) + struct.pack("<HB", 0xFFFF, 9) + b"0")
write("inbound_binary", "depth_bomb", bytes([CAP_1MIB | 0x20]) + struct.pack("<HB", 100, 0))

claims = {"sub": "alice", "exp": 4102444800, "iat": 1764000000, "iss": "https://issuer.test",
          "aud": "wse", "wse_topics": {"allow": ["chat:*"], "deny": ["chat:admin"]}}
good = jwt(claims)
write("jwt_validate", "valid", b"\x00" + good.encode())
write("jwt_validate", "expired", b"\x00" + jwt(dict(claims, exp=1000)).encode())
write("jwt_validate", "alg_none", b"\x00" + jwt(claims, header={"alg": "none"}).rsplit(".", 1)[0].encode() + b".")

write("token_extraction", "cookie_and_bearer",
      f"\x00theme=dark; access_token={good}; lang=en\nBearer {good}")
write("token_extraction", "logged_out_cookie", "\x00access_token=undefined\nbearer abc.def.ghi")

write("origin_policy", "allow_list",
      "\x00https://app.example.com, https://*.corp.example, null\nhttps://app.example.com\n"
      "HTTPS://A.CORP.EXAMPLE/\nnull\nhttps://evil.example\n")

upgrade = ("GET /wse?client_version=2.0.7&format=msgpack HTTP/1.1\r\nHost: localhost:5007\r\n"
           "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://app.example.com\r\n"
           f"Cookie: access_token={good}\r\n\r\n").encode()
write("upgrade_parser", "websocket_upgrade", b"\x00" + upgrade + masked(1, b"Hello"))
write("upgrade_parser", "post_with_body",
      b"\x00POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{\"topic\":\"a\"}")

# Byte 0: limit index 7 (1 MiB), raw mode; byte 1: split seed (255 = at every byte).
write("ws_frame_decoder", "masked_text", bytes([7, 3]) + masked(1, b"Hello"))
write("ws_frame_decoder", "fragments_ping_close", bytes([7, 255]) + masked(1, b"Hel", fin=False)
      + masked(9, b"ping") + masked(0, b"lo") + masked(8, struct.pack(">H", 1000) + b"bye"))

write("glob_match", "topic_glob", "\x00chat:*\nchat:lobby")
write("glob_match", "backtracking", "\x00*a*a*a*a*b\n" + "a" * 40)

write("topic_acl", "claim_and_topics",
      '\x00{"allow":["chat:*","data:*"],"deny":["data:internal:*"],"publish":["chat:*"]}\n'
      "chat:lobby\ndata:*\ndata:internal:audit\ndata:public\n")


def peer(ty, topic=b"", payload=b"", flags=0, trailer=b""):
    """One cluster peer frame (UPSTREAM §10.2-§10.4): u32 BE length, 8-byte header, body."""
    inner = struct.pack("<BBHI", ty, flags, len(topic), len(payload)) + topic + payload + trailer
    return struct.pack(">I", len(inner)) + inner


peer_hello = peer(0x04, payload=b"WSE\0" + struct.pack("<HH", 1, 36)
                  + b"0190a5f2-7c3e-7a11-8b2d-3f4e5a6b7c8d" + struct.pack("<I", 0x0F))
peer_session = (peer_hello
                + peer(0x08, payload=b"news\nprices.*")
                + peer(0x09, topic=b"10.0.0.2:9000")
                + peer(0x0A, payload=struct.pack("<H", 2) + struct.pack("<H", 13) + b"10.0.0.3:9000"
                       + struct.pack("<H", 13) + b"10.0.0.4:9000")
                + peer(0x02) + peer(0x03)
                + peer(0x06, topic=b"sports") + peer(0x07, topic=b"news")
                + peer(0x01, topic=b"news", payload=b'{"c":"U","t":"n","p":1}', flags=0x02,
                       trailer=struct.pack("<IQ", 0xabcd, 41))
                + peer(0x0B, topic=b"room", payload=struct.pack("<BQH", 0, 1764000000123, 5)
                       + b"alice" + b'{"s":"on"}')
                + peer(0x0C, payload=b'{"room":{}}')
                + peer(0x0D) + peer(0x42) + peer(0x05))
# Raw mode (byte 0 even); byte 1 picks the chunk sizes.
write("cluster_frame", "full_session_single_bytes", b"\x00\x00" + peer_session)
write("cluster_frame", "full_session_one_push", b"\x00\x05" + peer_session)
write("cluster_frame", "bad_magic_hello", b"\x00\x03" + peer_hello.replace(b"WSE\0", b"WSX\0"))
write("cluster_frame", "oversized_length", b"\x00\x04" + struct.pack(">I", (1 << 20) + 1) + b"\x01")
write("cluster_frame", "msg_claims_zstd_but_is_not", b"\x00\x02"
      + peer(0x01, topic=b"t", payload=b"\x28\xb5\x2f\xfd garbage", flags=0x01))

# Raw mode (byte 0 even): a presence sync chunk as a peer sends it (docs/cluster.md §14).
write("presence_chunk", "two_entries", b"\x00" + json.dumps(
    {"o": 7, "e": [["room", "alice", 1764000000123, 0, 7, 2, {"s": "on"}],
                   ["room", "bob", 1764000000456, 3, 7, None, None]]},
    separators=(",", ":")).encode())
