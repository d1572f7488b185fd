"""The installed package: exports, type stubs that cover every public item, ``py.typed``."""

import ast
import importlib.resources
import inspect

import wse_server
from wse_server import _wse_accel

# The original's __all__, in its order.
ORIGINAL_EXPORTS = [
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


def test_the_package_exports_the_original_names():
    assert wse_server.__all__ == ORIGINAL_EXPORTS
    for name in ORIGINAL_EXPORTS:
        assert getattr(wse_server, name) is not None
    assert wse_server.RustWSEServer is _wse_accel.RustWSEServer


def test_enums_have_the_original_members():
    assert {m.name: m.value for m in wse_server.EventPriority} == {
        "CRITICAL": 10,
        "HIGH": 8,
        "NORMAL": 5,
        "LOW": 3,
        "BACKGROUND": 1,
    }
    assert [m.value for m in wse_server.DeliveryGuarantee] == ["at_most_once"]


def stub_tree():
    files = importlib.resources.files("wse_server")
    assert (files / "py.typed").is_file()
    return ast.parse((files / "_wse_accel.pyi").read_text())


def test_the_stub_declares_every_public_item_of_the_native_module_with_a_docstring():
    tree = stub_tree()
    declared = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared[node.name] = node
    public = {n for n in dir(_wse_accel) if not n.startswith("_")}
    assert public <= declared.keys(), f"missing from the stub: {public - declared.keys()}"
    for name in public:
        node = declared[name]
        assert ast.get_docstring(node), f"{name} has no docstring in the stub"
        obj = getattr(_wse_accel, name)
        assert obj.__doc__, f"{name} has no runtime docstring"
        if isinstance(node, ast.ClassDef):
            methods = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
            runtime = {
                n
                for n, v in vars(obj).items()
                if not n.startswith("_") and (callable(v) or inspect.isdatadescriptor(v))
            }
            assert runtime <= methods.keys(), f"{name}: {runtime - methods.keys()} not in stub"
            for m in methods.values():
                assert ast.get_docstring(m), f"{name}.{m.name} has no docstring in the stub"
