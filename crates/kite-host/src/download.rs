//! Fetches a component published at a URL (a Spin `source = { url, digest }`): over HTTP or
//! HTTPS with the same resolver, blocked-network check and TLS roots as guests' requests,
//! bounded in size and time, and accepted only if its SHA-256 is the one the manifest names.

use crate::capability::outbound_connect::{connect_tcp, tls, Failure};
use http_body_util::{BodyExt, Empty, Limited};
use kite_app::BlockedNetwork;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The largest component Kite downloads.
pub const MAX_DOWNLOAD_BYTES: usize = 256 << 20;
const TIMEOUT: Duration = Duration::from_secs(120);

/// The bytes at `url`, if their SHA-256 is `sha256` (lowercase hex). Errors say what failed.
pub async fn download(
    url: &str,
    sha256: &str,
    blocked: &[BlockedNetwork],
) -> anyhow::Result<Vec<u8>> {
    tokio::time::timeout(TIMEOUT, fetch(url, blocked))
        .await
        .map_err(|_| anyhow::anyhow!("downloading {url} took longer than {}s", TIMEOUT.as_secs()))?
        .and_then(|bytes| {
            let digest = sha256_hex(&bytes);
            if digest == sha256 {
                Ok(bytes)
            } else {
                anyhow::bail!("{url} has SHA-256 {digest}, not the {sha256} the manifest names")
            }
        })
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn fetch(url: &str, blocked: &[BlockedNetwork]) -> anyhow::Result<Vec<u8>> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| anyhow::anyhow!("{url} is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => anyhow::bail!("{url}: only http and https URLs can be downloaded"),
    };
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("{url} names no host"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let failed = |failure: Failure| match failure {
        Failure::Refused { reason, .. } => anyhow::anyhow!("cannot download {url}: {reason}"),
        Failure::Failed(code) => anyhow::anyhow!("cannot download {url}: {code}"),
    };
    let tcp = connect_tcp(&host, port, blocked, TIMEOUT)
        .await
        .map_err(failed)?;
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            http::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(http::header::USER_AGENT, "kite")
        .body(Empty::<bytes::Bytes>::new())?;
    let response = if https {
        let config = crate::capability::client_tls::builtin().config.clone();
        let stream = tls(config, &host, tcp, TIMEOUT).await.map_err(failed)?;
        send(stream, request).await?
    } else {
        send(tcp, request).await?
    };
    if !response.status().is_success() {
        anyhow::bail!(
            "downloading {url}: the server answered {}",
            response.status()
        );
    }
    let body = Limited::new(response.into_body(), MAX_DOWNLOAD_BYTES)
        .collect()
        .await
        .map_err(|e| {
            anyhow::anyhow!("downloading {url}: {e} (at most {MAX_DOWNLOAD_BYTES} bytes)")
        })?;
    Ok(body.to_bytes().to_vec())
}

async fn send<S>(
    stream: S,
    request: http::Request<Empty<bytes::Bytes>>,
) -> anyhow::Result<http::Response<hyper::body::Incoming>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender.send_request(request).await?)
}
