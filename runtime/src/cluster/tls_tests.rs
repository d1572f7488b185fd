//! Tests for `cluster::tls`: certificates are generated at test time (rcgen), files live in a
//! per-test temporary directory, and handshakes run over `tokio::io::duplex`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// The SANs of every node certificate unless a test says otherwise.
const NODE_SANS: &[&str] = &["127.0.0.1", "localhost"];
/// The address a client dials in the tests (covered by [`NODE_SANS`]).
const PEER: &str = "127.0.0.1:9000";

// ---------------------------------------------------------------- fixtures

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A node certificate and its private key, both PEM.
struct Node {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign CA");
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A P-256 node certificate with a PKCS#8 key.
    fn node(&self, sans: &[&str]) -> Node {
        let key = KeyPair::generate().expect("generate node key");
        let key_pem = key.serialize_pem();
        self.node_with_key(sans, &key, key_pem)
    }

    /// A node certificate for `key`, whose file form is `key_pem` (any encoding).
    fn node_with_key(&self, sans: &[&str], key: &KeyPair, key_pem: String) -> Node {
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).expect("node SANs");
        params
            .distinguished_name
            .push(DnType::CommonName, "wse node");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(key, &self.issuer).expect("sign node cert");
        Node {
            cert_pem: cert.pem(),
            key_pem,
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wse-cluster-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    /// Writes `node` and the CA bundle as `<prefix>.crt`, `<prefix>.key`, `<prefix>-ca.crt`.
    fn files(&self, prefix: &str, node: &Node, ca_pem: &str) -> TlsFiles {
        TlsFiles {
            cert: self.write(&format!("{prefix}.crt"), &node.cert_pem),
            key: self.write(&format!("{prefix}.key"), &node.key_pem),
            ca: self.write(&format!("{prefix}-ca.crt"), ca_pem),
        }
    }

    fn tls(&self, prefix: &str, node: &Node, ca: &Ca) -> ClusterTls {
        ClusterTls::load(&self.files(prefix, node, &ca.pem())).expect("load node TLS")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Handshake = (
    io::Result<server::TlsStream<DuplexStream>>,
    io::Result<client::TlsStream<DuplexStream>>,
);

async fn handshake(server: &ClusterTls, client: &ClusterTls, addr: &str) -> Handshake {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::join!(server.accept(server_io), client.connect(addr, client_io))
}

/// Handshake, then one message each way. `Err` carries what went wrong on either side.
async fn link(server: &ClusterTls, client: &ClusterTls, addr: &str) -> Result<(), String> {
    let (mut s, mut c) = match handshake(server, client, addr).await {
        (Ok(s), Ok(c)) => (s, c),
        (s, c) => {
            return Err(format!(
                "server: {:?}, client: {:?}",
                s.err().map(|e| e.to_string()),
                c.err().map(|e| e.to_string())
            ));
        }
    };
    let io = |e: io::Error| e.to_string();
    c.write_all(b"hello from the client").await.map_err(io)?;
    c.flush().await.map_err(io)?;
    let mut got = [0u8; 21];
    s.read_exact(&mut got).await.map_err(io)?;
    assert_eq!(&got, b"hello from the client");
    s.write_all(b"and back").await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut got = [0u8; 8];
    c.read_exact(&mut got).await.map_err(io)?;
    assert_eq!(&got, b"and back");
    Ok(())
}

fn config_message(result: Result<ClusterTls, TlsError>) -> String {
    match result {
        Ok(_) => panic!("expected a TLS config error"),
        Err(e @ TlsError::Config(_)) => e.to_string(),
        Err(e) => panic!("expected TlsError::Config, got {e:?}"),
    }
}

// ---------------------------------------------------------------- handshakes

#[tokio::test]
async fn nodes_of_one_ca_complete_mtls_and_exchange_bytes_both_ways() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let a = dir.tls("a", &ca.node(NODE_SANS), &ca);
    let b = dir.tls("b", &ca.node(NODE_SANS), &ca);
    for addr in [PEER, "localhost:9000", "127.0.0.1"] {
        link(&a, &b, addr).await.expect(addr);
        link(&b, &a, addr).await.expect(addr);
    }
}

#[tokio::test]
async fn client_without_certificate_is_refused_by_server() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let server_tls = dir.tls("a", &ca.node(NODE_SANS), &ca);

    let mut roots = RootCertStore::empty();
    roots
        .add(ca.issuer.der().clone())
        .expect("CA cert into roots");
    let anonymous =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let name = server_name(PEER).expect("server name");
    let (served, _) = tokio::join!(
        server_tls.accept(server_io),
        TlsConnector::from(Arc::new(anonymous)).connect(name, client_io)
    );
    let err = served.expect_err("server must refuse a client without a certificate");
    assert!(
        err.to_string().contains("peer sent no certificates"),
        "{err}"
    );
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused_by_server() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let rogue_ca = Ca::new("rogue CA");
    let server_tls = dir.tls("a", &ca.node(NODE_SANS), &ca);
    // The rogue client trusts the cluster CA (so it accepts the server) but its own
    // certificate comes from the rogue CA.
    let rogue = dir.tls(
        "rogue",
        &rogue_ca.node(NODE_SANS),
        &ca, // trusts the server
    );
    let (served, _) = handshake(&server_tls, &rogue, PEER).await;
    let err = served.expect_err("server must refuse a certificate of another CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn server_certificate_from_another_ca_is_refused_by_client() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let rogue_ca = Ca::new("rogue CA");
    let client_tls = dir.tls("a", &ca.node(NODE_SANS), &ca);
    let rogue_server = dir.tls("rogue", &rogue_ca.node(NODE_SANS), &ca);
    let (_, dialled) = handshake(&rogue_server, &client_tls, PEER).await;
    let err = dialled.expect_err("client must refuse a server of another CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn server_certificate_without_the_dialled_name_is_refused_by_client() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let server_tls = dir.tls("a", &ca.node(NODE_SANS), &ca);
    let client_tls = dir.tls("b", &ca.node(NODE_SANS), &ca);
    for addr in ["10.0.0.1:9000", "node-a.local:9000", "[::1]:9000"] {
        let (_, dialled) = handshake(&server_tls, &client_tls, addr).await;
        let err = dialled.expect_err(addr);
        assert!(
            err.to_string().contains("certificate not valid for name"),
            "{addr}: {err}"
        );
    }
}

#[tokio::test]
async fn dns_and_ipv6_names_in_the_certificate_are_accepted() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let sans = ["node-a.local", "::1", "10.0.0.1"];
    let server_tls = dir.tls("a", &ca.node(&sans), &ca);
    let client_tls = dir.tls("b", &ca.node(NODE_SANS), &ca);
    for addr in ["node-a.local:9000", "[::1]:9000", "::1", "10.0.0.1:7000"] {
        link(&server_tls, &client_tls, addr).await.expect(addr);
    }
}

#[tokio::test]
async fn connect_to_an_address_without_a_valid_host_fails_before_any_io() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let tls = dir.tls("a", &ca.node(NODE_SANS), &ca);
    for addr in ["", ":9000", "bad host:9000", "node_a..local:9000"] {
        let (_, client_io) = tokio::io::duplex(1024);
        let err = tls.connect(addr, client_io).await.expect_err(addr);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{addr}: {err}");
    }
}

#[test]
fn dial_host_strips_port_and_brackets() {
    let cases = [
        ("10.0.0.1:9000", "10.0.0.1"),
        ("node-a.local:9000", "node-a.local"),
        ("[::1]:9000", "::1"),
        ("[fe80::1]", "fe80::1"),
        ("::1", "::1"),
        ("2001:db8::7", "2001:db8::7"),
        ("node-a.local", "node-a.local"),
        ("10.0.0.1", "10.0.0.1"),
        ("node-a.local:", "node-a.local:"),
    ];
    for (addr, host) in cases {
        assert_eq!(dial_host(addr), host, "{addr}");
    }
}

// ---------------------------------------------------------------- reload

#[tokio::test]
async fn reload_with_a_new_ca_switches_future_handshakes_to_it() {
    let dir = TempDir::new();
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let node = dir.tls("node", &old_ca.node(NODE_SANS), &old_ca);
    let handle = node.clone(); // reload through a clone reaches every clone
    let old_peer = dir.tls("old", &old_ca.node(NODE_SANS), &old_ca);
    let new_peer = dir.tls("new", &new_ca.node(NODE_SANS), &new_ca);
    link(&node, &old_peer, PEER).await.expect("before reload");
    assert!(link(&node, &new_peer, PEER).await.is_err());

    let rotated = dir.files("node-v2", &new_ca.node(NODE_SANS), &new_ca.pem());
    handle.reload(&rotated).expect("reload");

    link(&node, &new_peer, PEER)
        .await
        .expect("server role after reload");
    link(&new_peer, &node, PEER)
        .await
        .expect("client role after reload");
    let (served, _) = handshake(&node, &old_peer, PEER).await;
    assert!(served.is_err(), "old-CA client must now be refused");
    let (_, dialled) = handshake(&old_peer, &node, PEER).await;
    assert!(dialled.is_err(), "old-CA server must now be refused");
}

#[tokio::test]
async fn failed_reload_keeps_the_previous_config_working() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let node_cert = ca.node(NODE_SANS);
    let node = dir.tls("node", &node_cert, &ca);
    let peer = dir.tls("peer", &ca.node(NODE_SANS), &ca);

    let mut broken = dir.files("node-v2", &node_cert, &ca.pem());
    broken.key = dir.write("garbage.key", "this is not PEM at all\n");
    let err = node.reload(&broken).expect_err("garbage key must fail");
    assert!(err.to_string().starts_with("TLS config error: "), "{err}");
    assert!(err.to_string().contains("garbage.key"), "{err}");

    link(&node, &peer, PEER)
        .await
        .expect("server role after failed reload");
    link(&peer, &node, PEER)
        .await
        .expect("client role after failed reload");
}

// ---------------------------------------------------------------- paths and env

#[test]
fn tls_paths_all_or_none() {
    let p = |s: &str| Some(PathBuf::from(s));
    assert_eq!(TlsFiles::from_parts(None, None, None), Ok(None));
    assert_eq!(
        TlsFiles::from_parts(p("c.pem"), p("k.pem"), p("ca.pem")),
        Ok(Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            ca: "ca.pem".into(),
        }))
    );
    let partial = [
        (
            p("c"),
            None,
            None,
            "tls_cert given but tls_key, tls_ca missing",
        ),
        (
            None,
            p("k"),
            p("ca"),
            "tls_key, tls_ca given but tls_cert missing",
        ),
        (
            p("c"),
            p("k"),
            None,
            "tls_cert, tls_key given but tls_ca missing",
        ),
        (
            None,
            None,
            p("ca"),
            "tls_ca given but tls_cert, tls_key missing",
        ),
    ];
    for (cert, key, ca, detail) in partial {
        let err = TlsFiles::from_parts(cert, key, ca).expect_err(detail);
        assert!(matches!(err, TlsError::Partial { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("Partial TLS config: "), "{text}");
        assert!(text.contains(detail), "{text}");
    }
}

#[test]
fn tls_env_all_or_none_with_empty_as_unset() {
    let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let from = |vars: BTreeMap<String, String>| TlsFiles::from_env(|name| vars.get(name).cloned());

    assert_eq!(from(env(&[])), Ok(None));
    assert_eq!(from(env(&[(ENV_CERT, ""), (ENV_KEY, "")])), Ok(None));
    assert_eq!(
        from(env(&[(ENV_CERT, "c"), (ENV_KEY, "k"), (ENV_CA, "ca")])),
        Ok(Some(TlsFiles {
            cert: "c".into(),
            key: "k".into(),
            ca: "ca".into(),
        }))
    );
    let err = from(env(&[(ENV_CERT, "c"), (ENV_KEY, "k"), (ENV_CA, "")])).expect_err("partial");
    assert_eq!(
        err.to_string(),
        "Partial TLS config: WSE_CLUSTER_TLS_CERT, WSE_CLUSTER_TLS_KEY given but \
         WSE_CLUSTER_TLS_CA missing (give all three of cert, key and ca, or none)"
    );
}

// ---------------------------------------------------------------- file errors

#[test]
fn unusable_files_are_config_errors_naming_the_file_and_reason() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let other_ca = Ca::new("other CA");
    let good = dir.files("good", &ca.node(NODE_SANS), &ca.pem());
    let other_key = dir.write("other.key", &ca.node(NODE_SANS).key_pem);
    let cert_only = dir.write("only-cert.pem", &ca.node(NODE_SANS).cert_pem);
    let empty = dir.write("empty.pem", "");
    let garbage = dir.write("garbage.pem", "not pem\n");
    let broken_pem = dir.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let not_der = dir.write(
        "not-der.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
    );
    let missing = dir.0.join("missing.pem");
    let directory = dir.0.clone();

    let with = |cert: &PathBuf, key: &PathBuf, ca: &PathBuf| TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        ca: ca.clone(),
    };
    let cases = [
        (
            with(&missing, &good.key, &good.ca),
            "missing.pem: cannot read certificate chain",
        ),
        (
            with(&good.cert, &missing, &good.ca),
            "missing.pem: cannot read private key",
        ),
        (
            with(&good.cert, &directory, &good.ca),
            ": cannot read private key",
        ),
        (
            with(&good.cert, &good.key, &missing),
            "missing.pem: cannot read CA bundle",
        ),
        (
            with(&empty, &good.key, &good.ca),
            "empty.pem: no certificate found in certificate chain",
        ),
        (
            with(&garbage, &good.key, &good.ca),
            "garbage.pem: no certificate found",
        ),
        (
            with(&good.cert, &good.key, &empty),
            "empty.pem: no certificate found in CA bundle",
        ),
        (
            with(&good.cert, &good.key, &garbage),
            "garbage.pem: no certificate found in CA bundle",
        ),
        (
            with(&good.cert, &good.key, &broken_pem),
            "broken.pem: invalid PEM in CA bundle",
        ),
        (
            with(&good.cert, &good.key, &not_der),
            "not-der.pem: invalid CA certificate",
        ),
        (
            with(&not_der, &good.key, &good.ca),
            "not-der.pem: unusable certificate",
        ),
        (
            with(&good.cert, &garbage, &good.ca),
            "garbage.pem: no private key found",
        ),
        (
            with(&good.cert, &cert_only, &good.ca),
            "only-cert.pem: no private key found",
        ),
        (
            with(&good.cert, &other_key, &good.ca),
            "other.key does not match certificate",
        ),
    ];
    for (files, expected) in cases {
        let text = config_message(ClusterTls::load(&files));
        assert!(text.starts_with("TLS config error: "), "{text}");
        assert!(text.contains(expected), "want {expected:?} in {text:?}");
    }
    // A certificate from another CA is not a load error: trust is checked per handshake.
    let foreign = dir.files("foreign", &other_ca.node(NODE_SANS), &ca.pem());
    assert!(ClusterTls::load(&foreign).is_ok());
}

#[tokio::test]
async fn rsa_pkcs1_ec_sec1_and_pkcs8_keys_load_and_handshake() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");

    let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA keygen");
    let rsa_pkcs1 = rsa_key.to_pkcs1_pem(LineEnding::LF).expect("PKCS#1 PEM");
    let rsa_pkcs8 = rsa_key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let rsa_signer = KeyPair::from_pem(&rsa_pkcs8).expect("rcgen RSA key");

    let ec_key = p256::SecretKey::random(&mut rand_core::OsRng);
    let ec_sec1 = ec_key.to_sec1_pem(LineEnding::LF).expect("SEC1 PEM");
    let ec_pkcs8 = ec_key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let ec_signer = KeyPair::from_pem(&ec_pkcs8).expect("rcgen EC key");

    let nodes = [
        (
            "rsa-pkcs1",
            "BEGIN RSA PRIVATE KEY",
            &rsa_signer,
            rsa_pkcs1.to_string(),
        ),
        (
            "rsa-pkcs8",
            "BEGIN PRIVATE KEY",
            &rsa_signer,
            rsa_pkcs8.to_string(),
        ),
        (
            "ec-sec1",
            "BEGIN EC PRIVATE KEY",
            &ec_signer,
            ec_sec1.to_string(),
        ),
        (
            "ec-pkcs8",
            "BEGIN PRIVATE KEY",
            &ec_signer,
            ec_pkcs8.to_string(),
        ),
    ];
    let peer = dir.tls("peer", &ca.node(NODE_SANS), &ca);
    for (name, label, signer, key_pem) in nodes {
        assert!(key_pem.contains(label), "{name}: fixture is not {label}");
        let node = ca.node_with_key(NODE_SANS, signer, key_pem);
        let tls = ClusterTls::load(&dir.files(name, &node, &ca.pem())).expect(name);
        link(&tls, &peer, PEER).await.expect(name);
        link(&peer, &tls, PEER).await.expect(name);
    }
}

#[test]
fn debug_output_shows_no_key_material() {
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let node = ca.node(NODE_SANS);
    let tls = dir.tls("a", &node, &ca);
    let shown = format!("{tls:?}");
    assert_eq!(shown, "ClusterTls { .. }");
}
