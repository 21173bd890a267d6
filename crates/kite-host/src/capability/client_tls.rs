//! TLS for a component's outbound connections, per host: the roots it trusts and the
//! certificate it shows. Kite's built-in roots unless a `[[client_tls]]` entry says otherwise.

use anyhow::Context;
use kite_app::ClientTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

/// How TLS to one host is made: the client configuration, and the PEM it was made from for
/// clients that build their own (MySQL's).
pub struct HostTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) builtin_roots: bool,
    /// Roots trusted besides (or instead of) the built-in ones, as a PEM bundle.
    pub(crate) roots_pem: Option<Vec<u8>>,
    /// The client's certificate chain and private key, as PEM.
    pub(crate) identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl HostTls {
    /// This host's TLS settings trusting `extra` roots as well (a root a guest names for
    /// one connection of its own, as Spin 4's PostgreSQL connection builder does).
    pub(crate) fn with_roots(
        &self,
        extra: &[CertificateDer<'static>],
    ) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = if self.builtin_roots {
            builtin_roots()
        } else {
            rustls::RootCertStore::empty()
        };
        let from_settings = match &self.roots_pem {
            Some(pem) => CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        for certificate in from_settings.into_iter().chain(extra.iter().cloned()) {
            roots
                .add(certificate)
                .context("a root certificate is not a CA certificate")?;
        }
        let identity = match &self.identity_pem {
            None => None,
            Some((chain, key)) => Some((
                CertificateDer::pem_slice_iter(chain).collect::<Result<Vec<_>, _>>()?,
                PrivateKeyDer::from_pem_slice(key)?,
            )),
        };
        client_config(roots, identity)
    }
}

/// The TLS settings of one component: a [`HostTls`] for each host a `[[client_tls]]` entry
/// names for it, and the built-in one for every other host.
#[derive(Default)]
pub struct ClientTlsSettings {
    by_host: HashMap<String, Arc<HostTls>>,
}

static BUILTIN: LazyLock<Arc<HostTls>> = LazyLock::new(|| {
    let config = client_config(builtin_roots(), None)
        .expect("the built-in roots make a valid TLS configuration");
    Arc::new(HostTls {
        config,
        builtin_roots: true,
        roots_pem: None,
        identity_pem: None,
    })
});

/// Kite's built-in TLS settings: Mozilla's roots (as webpki-roots carries them), no client
/// certificate.
pub fn builtin() -> Arc<HostTls> {
    BUILTIN.clone()
}

impl ClientTlsSettings {
    /// The settings of `component` from the runtime configuration's entries; the first
    /// entry naming a (component, host) pair wins, as in Spin. Files are read here, once.
    pub fn for_component(entries: &[ClientTls], component: &str) -> anyhow::Result<Self> {
        let mut by_host = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            if !entry.component_ids.iter().any(|id| id == component) {
                continue;
            }
            let tls = Arc::new(
                host_tls(entry)
                    .with_context(|| format!("runtime configuration `client_tls[{index}]`"))?,
            );
            for host in &entry.hosts {
                by_host.entry(host.clone()).or_insert_with(|| tls.clone());
            }
        }
        Ok(ClientTlsSettings { by_host })
    }

    /// How TLS to `host` is made.
    pub(crate) fn for_host(&self, host: &str) -> Arc<HostTls> {
        self.by_host
            .get(&kite_app::ClientTls::canonical_host(host))
            .cloned()
            .unwrap_or_else(builtin)
    }
}

fn builtin_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

fn certificates(pem: &[u8], path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(certificates)
}

fn host_tls(entry: &ClientTls) -> anyhow::Result<HostTls> {
    let mut roots = if entry.use_builtin_roots {
        builtin_roots()
    } else {
        rustls::RootCertStore::empty()
    };
    let roots_pem = match &entry.ca_roots_file {
        None => None,
        Some(path) => {
            let pem = read(path, "roots file")?;
            for certificate in certificates(&pem, path)? {
                roots.add(certificate).with_context(|| {
                    format!("{} holds a certificate that is not a CA", path.display())
                })?;
            }
            Some(pem)
        }
    };
    anyhow::ensure!(
        !roots.is_empty(),
        "no roots are trusted: set `ca_roots_file`, or `ca_use_webpki_roots = true`"
    );
    let (identity, identity_pem) = match &entry.client_identity {
        None => (None, None),
        Some(identity) => {
            let cert_pem = read(&identity.cert_file, "client certificate")?;
            let key_pem = read(&identity.key_file, "private key")?;
            let chain = certificates(&cert_pem, &identity.cert_file)?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| {
                format!("{} is not a PEM private key", identity.key_file.display())
            })?;
            (Some((chain, key)), Some((cert_pem, key_pem)))
        }
    };
    Ok(HostTls {
        config: client_config(roots, identity)?,
        builtin_roots: entry.use_builtin_roots,
        roots_pem,
        identity_pem,
    })
}

fn client_config(
    roots: rustls::RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .context("the client certificate does not match its private key")?,
    };
    Ok(Arc::new(config))
}
