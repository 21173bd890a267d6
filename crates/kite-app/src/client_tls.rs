//! `[[client_tls]]` in the runtime configuration (Spin's setting): which certificate
//! authorities, and which client certificate, some components use for TLS to some hosts.

use crate::{Location, ManifestError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// TLS settings for connections from `component_ids` to `hosts` (by name, any port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub component_ids: Vec<String>,
    /// Host names, lower-cased, without ports.
    pub hosts: Vec<String>,
    /// Whether Kite's built-in roots (Mozilla's, as webpki-roots carries them) are trusted.
    pub use_builtin_roots: bool,
    /// More trusted roots: a PEM file (absolute, resolved from the configuration's directory).
    pub ca_roots_file: Option<PathBuf>,
    /// A client certificate chain and its private key, both PEM files.
    pub client_identity: Option<ClientIdentity>,
}

impl ClientTls {
    /// The one spelling of a host name or address that entries are kept and looked up
    /// under: lower case, no trailing dot, IP addresses in their standard form.
    pub fn canonical_host(host: &str) -> String {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => bare.trim_end_matches('.').to_ascii_lowercase(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientTls {
    component_ids: Spanned<Vec<String>>,
    hosts: Spanned<Vec<String>>,
    ca_use_platform_roots: Option<bool>,
    ca_use_webpki_roots: Option<bool>,
    ca_roots_file: Option<String>,
    client_cert_file: Option<Spanned<String>>,
    client_private_key_file: Option<Spanned<String>>,
}

impl RawClientTls {
    /// The settings of entry `index`, with paths resolved from `dir`; errors name the entry's
    /// line and key in `file`.
    pub(crate) fn read(
        self,
        index: usize,
        file: &Path,
        text: &str,
        dir: &Path,
    ) -> Result<ClientTls, ManifestError> {
        let error = |key: &str, span: std::ops::Range<usize>, message: String| {
            ManifestError::new(
                file,
                Some(Location::from_offset(text, span.start)),
                format!("client_tls[{index}].{key}"),
                message,
            )
        };
        if self.component_ids.get_ref().is_empty() {
            return Err(error(
                "component_ids",
                self.component_ids.span(),
                "list at least one component".into(),
            ));
        }
        if self.hosts.get_ref().is_empty() {
            return Err(error(
                "hosts",
                self.hosts.span(),
                "list at least one host".into(),
            ));
        }
        let mut hosts = Vec::new();
        for host in self.hosts.get_ref() {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let is_ip = bare.parse::<std::net::IpAddr>().is_ok();
            if !is_ip && (bare.is_empty() || bare.contains([':', '/', '@', ' ', '*'])) {
                return Err(error(
                    "hosts",
                    self.hosts.span(),
                    format!("{host:?} is not a host name; write the name alone, without a scheme, port or wildcard (the settings apply on every port)"),
                ));
            }
            hosts.push(ClientTls::canonical_host(bare));
        }
        // Spin's defaults: the built-in roots unless a roots file is given.
        let use_builtin_roots = match (self.ca_use_platform_roots, self.ca_use_webpki_roots) {
            (None, None) => self.ca_roots_file.is_none(),
            (platform, webpki) => platform.unwrap_or(false) || webpki.unwrap_or(false),
        };
        let client_identity = match (self.client_cert_file, self.client_private_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ClientIdentity {
                cert_file: dir.join(cert.get_ref()),
                key_file: dir.join(key.get_ref()),
            }),
            (Some(cert), None) => {
                return Err(error(
                    "client_cert_file",
                    cert.span(),
                    "a client certificate needs `client_private_key_file` too".into(),
                ))
            }
            (None, Some(key)) => {
                return Err(error(
                    "client_private_key_file",
                    key.span(),
                    "a private key needs `client_cert_file` too".into(),
                ))
            }
        };
        Ok(ClientTls {
            component_ids: self.component_ids.into_inner(),
            hosts,
            use_builtin_roots,
            ca_roots_file: self.ca_roots_file.map(|path| dir.join(path)),
            client_identity,
        })
    }
}
