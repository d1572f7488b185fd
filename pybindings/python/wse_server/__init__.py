"""WSE: a WebSocket engine in Rust, embedded in Python.

A drop-in replacement for the original ``wse_server`` package: the same ``RustWSEServer``
class, module functions and helper classes, importable from ``wse_server`` and from
``wse_server._wse_accel``. Features that have not landed in this engine yet (the cluster) are
absent rather than faked; see the project's ``docs/pybindings.md``.
"""

from wse_server._wse_accel import (
    RustCompressionManager,
    RustEventSequencer,
    RustPriorityMessageQueue,
    RustPriorityQueue,
    RustSequencer,
    RustTokenBucket,
    RustWSEServer,
    __version__,
    rust_aes_gcm_decrypt,
    rust_aes_gcm_encrypt,
    rust_compress,
    rust_decompress,
    rust_ecdh_derive_shared_secret,
    rust_ecdh_generate_keypair,
    rust_hmac_sha256,
    rust_jwt_decode,
    rust_jwt_encode,
    rust_match_event,
    rust_sha256,
    rust_should_compress,
    rust_sign_message,
    rust_transform_event,
)
from wse_server.core.filters import EventFilter
from wse_server.core.types import DeliveryGuarantee, EventPriority

__all__ = [
    "RustWSEServer",
    "RustCompressionManager",
    "RustEventSequencer",
    "RustPriorityMessageQueue",
    "RustPriorityQueue",
    "RustSequencer",
    "RustTokenBucket",
    "rust_jwt_encode",
    "rust_jwt_decode",
    "rust_aes_gcm_encrypt",
    "rust_aes_gcm_decrypt",
    "rust_ecdh_generate_keypair",
    "rust_ecdh_derive_shared_secret",
    "rust_hmac_sha256",
    "rust_sha256",
    "rust_compress",
    "rust_decompress",
    "rust_should_compress",
    "rust_sign_message",
    "rust_match_event",
    "rust_transform_event",
    "EventFilter",
    "EventPriority",
    "DeliveryGuarantee",
    "__version__",
]
