//! The admin API: HTTP+JSON on its own listener, every request authenticated with the
//! host's bearer token; bundles are streamed to disk within the app's quota before deploy.

use crate::platform::{Platform, PlatformError};
use crate::token::AdminToken;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;

type AdminResponse = Response<UnsyncBoxBody<Bytes, std::convert::Infallible>>;

/// The largest JSON request body accepted.
const MAX_JSON_BYTES: usize = 1 << 20;
/// Admin connections open at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's headers, or to send the next piece of a
/// bundle.
const CLIENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the admin API on `listener` until the process ends (on a thread of its own).
pub fn spawn(
    platform: Arc<Platform>,
    token: AdminToken,
    listener: TcpListener,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let token = Arc::new(token);
    Ok(std::thread::Builder::new()
        .name("kite-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(e) => {
                        tracing::error!("admin API: {e}");
                        return;
                    }
                };
                let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                loop {
                    let Ok(place) = places.clone().acquire_owned().await else {
                        return;
                    };
                    let (stream, _) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::warn!("admin API: accepting a connection failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let platform = platform.clone();
                    let token = token.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let platform = platform.clone();
                        let token = token.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(&platform, &token, req).await)
                        }
                    });
                    tokio::spawn(async move {
                        let _place = place;
                        let connection = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(CLIENT_TIMEOUT)
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                        if let Err(e) = connection.await {
                            tracing::debug!("admin connection ended with an error: {e}");
                        }
                    });
                }
            })
        })?)
}

async fn handle(
    platform: &Arc<Platform>,
    token: &AdminToken,
    req: Request<Incoming>,
) -> AdminResponse {
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if !token.accepts(authorization) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: pass `Authorization: Bearer <token>` (the token is in the server's state directory, file admin-token)",
        );
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return response;
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => {
            let mut response = Response::new(
                Full::new(Bytes::from(crate::metrics::render(platform))).boxed_unsync(),
            );
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(response)
        }
        (&Method::GET, ["v1", "apps"]) => blocking(platform, |p| p.list()).await.map(json),
        (&Method::GET, ["v1", "apps", name]) => {
            let name = name.to_string();
            blocking(platform, move |p| p.view(&name)).await.map(json)
        }
        (&Method::POST, ["v1", "apps", name, "versions"]) => deploy(platform, name, req).await,
        (&Method::POST, ["v1", "apps", name, "rollback"]) => {
            let name = name.to_string();
            blocking(platform, move |p| p.rollback(&name))
                .await
                .map(json)
        }
        (&Method::POST, ["v1", "apps", name, "redeploy"]) => {
            let name = name.to_string();
            blocking(platform, move |p| p.redeploy(&name))
                .await
                .map(json)
        }
        (&Method::DELETE, ["v1", "apps", name]) => {
            let name = name.to_string();
            blocking(platform, move |p| p.remove(&name))
                .await
                .map(|()| json(serde_json::json!({ "removed": true })))
        }
        (&Method::PATCH, ["v1", "apps", name, "variables"]) => {
            let name = name.to_string();
            match read_json::<BTreeMap<String, Option<String>>>(req).await {
                Ok(changes) => blocking(platform, move |p| p.set_variables(&name, changes))
                    .await
                    .map(json),
                Err(e) => Err(e),
            }
        }
        (&Method::PATCH, ["v1", "apps", name, "quotas"]) => {
            let name = name.to_string();
            match read_json::<serde_json::Map<String, serde_json::Value>>(req).await {
                Ok(changes) => blocking(platform, move |p| p.set_quotas(&name, &changes))
                    .await
                    .map(json),
                Err(e) => Err(e),
            }
        }
        (&Method::GET, ["v1", "apps", name, "logs"]) => match platform.view(name) {
            Ok(_) => Ok(log_stream(name)),
            Err(e) => Err(e),
        },
        (&Method::GET, ["v1", "apps", name, "stats"]) => match platform.host.app(name) {
            Some(app) => Ok(json(app.stats.snapshot())),
            None => Err(PlatformError::NotFound(format!(
                "no app named `{name}` is serving"
            ))),
        },
        _ => Err(PlatformError::NotFound(format!(
            "no such API: {method} {path} (see docs/api.md)"
        ))),
    };
    result.unwrap_or_else(|e| {
        let status = match &e {
            PlatformError::NotFound(_) => StatusCode::NOT_FOUND,
            PlatformError::Invalid(_) => StatusCode::BAD_REQUEST,
            PlatformError::Conflict(_) => StatusCode::CONFLICT,
            PlatformError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PlatformError::Internal(e) => {
                tracing::error!("admin API: {method} {path}: {e:#}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        error(status, &format!("{e:#}"))
    })
}

/// Runs a platform change off the event loop (it may compile components).
async fn blocking<T: Send + 'static>(
    platform: &Arc<Platform>,
    change: impl FnOnce(&Platform) -> Result<T, PlatformError> + Send + 'static,
) -> Result<T, PlatformError> {
    let platform = platform.clone();
    tokio::task::spawn_blocking(move || change(&platform))
        .await
        .map_err(|e| PlatformError::Internal(anyhow::anyhow!("the change failed: {e}")))?
}

/// Receives a bundle into a temporary file (refused unread if it declares more bytes than
/// the app may upload), then deploys it.
async fn deploy(
    platform: &Arc<Platform>,
    name: &str,
    req: Request<Incoming>,
) -> Result<AdminResponse, PlatformError> {
    // Compressed bundles are smaller than their files; this leaves room for tar headers
    // around files that do not compress.
    let quota = platform.bundle_limit(name);
    let limit = quota.saturating_add(quota / 8).saturating_add(1 << 20);
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(quota));
    }
    let hosts: Option<Vec<String>> = req.uri().query().map(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == "host")
            .map(|(_, value)| value.into_owned())
            .collect()
    });
    let hosts = hosts.filter(|h| !h.is_empty());
    let tmp = platform.settings().state_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(anyhow::Error::from)?;
    let mut upload = tempfile::NamedTempFile::new_in(&tmp).map_err(anyhow::Error::from)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = req.into_body();
    loop {
        let frame = match tokio::time::timeout(CLIENT_TIMEOUT, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                return Err(PlatformError::Invalid(format!(
                    "the upload stalled: nothing arrived for {}s",
                    CLIENT_TIMEOUT.as_secs()
                )))
            }
        };
        let frame =
            frame.map_err(|e| PlatformError::Invalid(format!("reading the bundle: {e}")))?;
        if let Ok(data) = frame.into_data() {
            received += data.len() as u64;
            if received > limit {
                return Err(too_large(quota));
            }
            hasher.update(&data);
            upload.write_all(&data).map_err(anyhow::Error::from)?;
        }
    }
    upload.flush().map_err(anyhow::Error::from)?;
    let digest = crate::bundle::hex(&hasher.finalize());
    let name = name.to_string();
    let view = blocking(platform, move |p| {
        p.deploy(&name, upload.path(), &digest, hosts)
    })
    .await?;
    let mut response = json(view);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

fn too_large(quota: u64) -> PlatformError {
    PlatformError::TooLarge(format!(
        "the bundle is larger than this app's bundle quota of {quota} bytes"
    ))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, PlatformError> {
    let bytes = Limited::new(req.into_body(), MAX_JSON_BYTES)
        .collect()
        .await
        .map_err(|e| PlatformError::Invalid(format!("reading the request: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| PlatformError::Invalid(format!("invalid JSON: {e}")))
}

fn json(value: impl Serialize) -> AdminResponse {
    let body = serde_json::to_vec_pretty(&value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// How often an idle log stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `app`'s log lines from now on, as server-sent events: one event per line.
fn log_stream(app: &str) -> AdminResponse {
    use tokio::sync::broadcast::error::RecvError;
    let receiver = crate::logs::hub().subscribe(app);
    let events = futures::stream::unfold(receiver, |mut receiver| async move {
        let text = tokio::select! {
            received = receiver.recv() => match received {
                Ok(line) => line
                    .lines()
                    .map(|l| format!("data: {l}\n"))
                    .chain(std::iter::once("\n".to_string()))
                    .collect(),
                Err(RecvError::Lagged(missed)) => {
                    format!(": {missed} lines skipped: this watcher fell behind\n\n")
                }
                Err(RecvError::Closed) => return None,
            },
            _ = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_string(),
        };
        let frame = hyper::body::Frame::data(Bytes::from(text));
        Some((Ok::<_, std::convert::Infallible>(frame), receiver))
    });
    let mut response = Response::new(StreamBody::new(events).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> AdminResponse {
    let mut response = json(serde_json::json!({ "error": message }));
    *response.status_mut() = status;
    response
}
