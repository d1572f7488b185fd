//! Mutual TLS for the cluster links (UPSTREAM §10.8, §10.10).
//!
//! Owns the node's TLS settings: one certificate chain and private key used for both roles
//! (server when a peer dials us, client when we dial a peer), and the CA bundle every peer
//! certificate must chain to.
//!
//! Inputs: three PEM files ([`TlsFiles`]), given as `connect_cluster` arguments or through the
//! `WSE_CLUSTER_TLS_CERT` / `_KEY` / `_CA` variables (all three or none). Outputs: handshaken
//! [`tokio_rustls`] streams over any `AsyncRead + AsyncWrite` transport (real TCP here, turmoil
//! streams in `wse-sim`), so the cluster session code above stays transport-agnostic.
//!
//! Invariants:
//! - Configs are built with the `ring` provider explicitly, never the process default (two
//!   providers in one workspace build make the default panic at run time; TOOLCHAIN.md).
//! - The server always requires a client certificate chaining to the CA; the client always
//!   verifies the server certificate against the CA with the dialled host as the name.
//! - [`ClusterTls::reload`] is all-or-nothing: it builds both configs from the new files first
//!   and swaps them in only when everything loaded; a handshake already running keeps the
//!   configs it started with.
//! - No timeout here: the caller wraps handshakes in `tokio::time::timeout` (5 s upstream).
//! - Key material never reaches `Debug` output or error messages (errors name files, not bytes).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// Environment variable naming the node certificate chain (PEM).
pub const ENV_CERT: &str = "WSE_CLUSTER_TLS_CERT";
/// Environment variable naming the node private key (PEM).
pub const ENV_KEY: &str = "WSE_CLUSTER_TLS_KEY";
/// Environment variable naming the CA bundle (PEM).
pub const ENV_CA: &str = "WSE_CLUSTER_TLS_CA";

/// The three PEM files of a node: its certificate chain, its private key, the CA bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first. Its SANs must cover the address peers dial.
    pub cert: PathBuf,
    /// Private key of the leaf: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
    /// CA bundle (at least one certificate) that every peer certificate must chain to.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// From the three optional paths of `connect_cluster` (`tls_cert`, `tls_key`, `tls_ca`):
    /// all three → `Some`, none → `None`, a partial set → [`TlsError::Partial`].
    pub fn from_parts(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        complete(cert, key, ca, ["tls_cert", "tls_key", "tls_ca"])
    }

    /// The same from `WSE_CLUSTER_TLS_CERT` / `_KEY` / `_CA`, looked up through `get` (the
    /// caller passes `|name| std::env::var(name).ok()`; tests pass a map). An empty value counts
    /// as unset, so `WSE_CLUSTER_TLS_CA=` in an env file clears the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<TlsFiles>, TlsError> {
        let path = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        complete(
            path(ENV_CERT),
            path(ENV_KEY),
            path(ENV_CA),
            [ENV_CERT, ENV_KEY, ENV_CA],
        )
    }
}

/// All three paths or none; `names` are how the caller spelled cert, key and ca.
fn complete(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    names: [&'static str; 3],
) -> Result<Option<TlsFiles>, TlsError> {
    match (cert, key, ca) {
        (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles { cert, key, ca })),
        (None, None, None) => Ok(None),
        (cert, key, ca) => {
            let present = [cert.is_some(), key.is_some(), ca.is_some()];
            let pick = |want: bool| -> Vec<&'static str> {
                names
                    .iter()
                    .zip(present)
                    .filter(|&(_, p)| p == want)
                    .map(|(&n, _)| n)
                    .collect()
            };
            Err(TlsError::Partial {
                given: pick(true),
                missing: pick(false),
            })
        }
    }
}

/// Why the cluster TLS settings could not be built. The `Display` prefixes are the upstream
/// `RuntimeError` messages (§10.10).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// Some but not all of cert, key and CA were given.
    #[error(
        "Partial TLS config: {} given but {} missing (give all three of cert, key and ca, or none)",
        given.join(", "),
        missing.join(", ")
    )]
    Partial {
        /// The names (argument or variable) that were given.
        given: Vec<&'static str>,
        /// The names that were missing.
        missing: Vec<&'static str>,
    },
    /// A file is missing, unreadable or holds unusable PEM; the message names the file.
    #[error("TLS config error: {0}")]
    Config(String),
}

/// Live mTLS settings: one node certificate for both roles, peers verified against the CA.
///
/// A cheap-to-clone handle: clones share the configs, so a [`reload`](Self::reload) through any
/// clone applies to all of them.
#[derive(Clone)]
pub struct ClusterTls {
    current: Arc<RwLock<Arc<Configs>>>,
}

/// The pair of configs built from one set of files.
struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately opaque: the configs hold the private key.
        f.debug_struct("ClusterTls").finish_non_exhaustive()
    }
}

impl ClusterTls {
    /// Reads and checks the three files and builds the server and client configs.
    pub fn load(files: &TlsFiles) -> Result<ClusterTls, TlsError> {
        let configs = Configs::build(files)?;
        Ok(ClusterTls {
            current: Arc::new(RwLock::new(Arc::new(configs))),
        })
    }

    /// Re-reads the files; on success future handshakes use the new configs, on error nothing
    /// changes.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), TlsError> {
        let configs = Arc::new(Configs::build(files)?);
        // The lock only guards an `Arc` swap, which cannot be left half done: a poisoned lock
        // still holds a valid value.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = configs;
        Ok(())
    }

    /// Server side of a handshake: requires a client certificate chaining to the CA.
    pub async fn accept<S>(&self, stream: S) -> io::Result<server::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let config = Arc::clone(&self.configs().server);
        TlsAcceptor::from(config).accept(stream).await
    }

    /// Client side of a handshake: verifies the server certificate against the CA, with the
    /// host part of `addr` as the name ("10.0.0.1:9000" → IP, "node-a.local:9000" → DNS name,
    /// `"[::1]:9000"` → IPv6), and presents the node certificate. An `addr` whose host is
    /// neither an IP nor a valid DNS name fails with [`io::ErrorKind::InvalidInput`].
    pub async fn connect<S>(&self, addr: &str, stream: S) -> io::Result<client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let name = server_name(addr)?;
        let config = Arc::clone(&self.configs().client);
        TlsConnector::from(config).connect(name, stream).await
    }

    fn configs(&self) -> Arc<Configs> {
        // See `reload` for why a poisoned lock is still usable.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Configs {
    fn build(files: &TlsFiles) -> Result<Configs, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_cert_chain(&files.cert)?;
        let key = read_private_key(&files.key)?;
        let roots = Arc::new(read_ca(&files.ca)?);
        let node = Arc::new(certified_key(files, chain, key, &provider)?);

        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| config_error(&files.ca, format_args!("unusable CA bundle: {e}")))?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(format!("TLS protocol versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(&node))));
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(format!("TLS protocol versions: {e}")))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(node)));
        Ok(Configs {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

fn config_error(path: &Path, reason: fmt::Arguments<'_>) -> TlsError {
    TlsError::Config(format!("{}: {reason}", path.display()))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| config_error(path, format_args!("cannot read {what}: {e}")))
}

/// Every `CERTIFICATE` block of the file, in order; other PEM blocks are skipped.
fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(path, format_args!("invalid PEM in {what}: {e}")))?;
    if certs.is_empty() {
        return Err(config_error(
            path,
            format_args!("no certificate found in {what}"),
        ));
    }
    Ok(certs)
}

fn read_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certs(path, "certificate chain")
}

/// The first private key block of the file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => config_error(
            path,
            format_args!("no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected)"),
        ),
        e => config_error(path, format_args!("invalid PEM in private key: {e}")),
    })
}

fn read_ca(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "CA bundle")? {
        roots
            .add(cert)
            .map_err(|e| config_error(path, format_args!("invalid CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Parses the key with the provider and checks it belongs to the leaf certificate.
fn certified_key(
    files: &TlsFiles,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| config_error(&files.key, format_args!("unusable private key: {e}")))?;
    let node = CertifiedKey::new(chain, signing_key);
    match node.keys_match() {
        // A key type whose public half rustls cannot derive: the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(node)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Config(format!(
            "private key {} does not match certificate {}",
            files.key.display(),
            files.cert.display()
        ))),
        Err(e) => Err(config_error(
            &files.cert,
            format_args!("unusable certificate: {e}"),
        )),
    }
}

/// The TLS name of the peer at `addr` (`host:port`, `[v6]:port`, or a bare host).
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = dial_host(addr);
    ServerName::try_from(host)
        .map(|name| name.to_owned())
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cluster peer address {addr:?}: host {host:?} is not a TLS server name: {e}"
                ),
            )
        })
}

/// The host part of `addr`, without brackets and port.
fn dial_host(addr: &str) -> &str {
    if let Some((host, _)) = addr.strip_prefix('[').and_then(|rest| rest.split_once(']')) {
        return host;
    }
    // A bare IPv6 address: its colons are not a port separator.
    if addr.parse::<IpAddr>().is_ok() {
        return addr;
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
