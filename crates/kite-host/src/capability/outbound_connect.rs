//! Sends one outbound HTTP request over a connection Kite opens itself: the name resolved
//! once, each address checked against the blocked networks, the connection counted.

use super::outbound_policy::OutboundPolicy;
use bytes::Bytes;
use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kite_app::BlockedNetwork;
use std::future::{poll_fn, Future};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// Outbound connections one instance may have open at once.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 32;
/// Outbound connections all instances of one component may have open at once, so that one
/// component cannot take the whole process's share.
pub const MAX_CONNECTIONS_PER_COMPONENT: usize = 256;
/// Outbound connections the whole process may have open at once.
pub const MAX_CONNECTIONS_PER_PROCESS: usize = 1024;
/// Waits without a guest-given timeout end here (the request's deadline may end them sooner).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

static PROCESS_CONNECTIONS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_PROCESS)));

/// Why a request was not sent: a refusal Kite logs, or the error the guest gets.
pub(crate) enum Failure {
    Refused { reason: String, code: HttpError },
    Failed(HttpError),
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Self {
        Failure::Failed(e)
    }
}

/// What a sent request hands back: the response, and the connection's driver, which holds
/// the connection's places in the caps until the connection ends.
pub(crate) type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// A connection's places in the per-instance, per-component and per-process caps.
pub(crate) struct ConnectionPermits {
    _instance: OwnedSemaphorePermit,
    _component: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

/// Takes a place for one more connection of the instance counted by `instance`, of the
/// component counted by `component`.
pub(crate) fn reserve_connection(
    instance: &Arc<Semaphore>,
    component: &Arc<Semaphore>,
) -> Result<ConnectionPermits, Failure> {
    let refused = |reason: String| Failure::Refused {
        reason,
        code: HttpError::ConnectionLimitReached,
    };
    let instance = instance.clone().try_acquire_owned().map_err(|_| {
        refused(format!(
            "the instance already has {MAX_CONNECTIONS_PER_INSTANCE} outbound connections open"
        ))
    })?;
    let component = component.clone().try_acquire_owned().map_err(|_| {
        refused(format!(
            "the component already has {MAX_CONNECTIONS_PER_COMPONENT} outbound connections open"
        ))
    })?;
    let process = PROCESS_CONNECTIONS
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            refused(format!(
                "the server already has {MAX_CONNECTIONS_PER_PROCESS} outbound connections open"
            ))
        })?;
    Ok(ConnectionPermits {
        _instance: instance,
        _component: component,
        _process: process,
    })
}

/// Sends `request` to its URI's host: resolved here, connected only on addresses outside
/// the policy's blocked networks, with TLS (as the policy says for the host) for `https`.
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    policy: &OutboundPolicy,
    permits: ConnectionPermits,
) -> Result<Sent, Failure> {
    let uri = request.uri();
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let timeout = |chosen: Option<Duration>| chosen.unwrap_or(DEFAULT_TIMEOUT);
    let connect_timeout = timeout(options.and_then(|o| o.connect_timeout));
    let first_byte_timeout = timeout(options.and_then(|o| o.first_byte_timeout));
    let between_bytes_timeout =
        timeout(options.and_then(|o| o.between_bytes_timeout)).max(Duration::from_nanos(1));

    let addresses = resolve(&host, port, connect_timeout).await?;
    let addresses = allowed_addresses(&host, addresses, &policy.blocked)?;
    let tcp = connect(&addresses, connect_timeout).await?;
    let stream: Box<dyn Stream> = if use_tls {
        let config = policy.tls.for_host(&host).config.clone();
        Box::new(tls(config, &host, tcp, connect_timeout).await?)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::from)?;

    // Only a proxy is sent the scheme and authority; the origin gets the path and query.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let mut response = Box::pin(tokio::time::timeout(
        first_byte_timeout,
        sender.send_request(request),
    ));
    let mut connection = Some(connection);
    // The connection has to be driven while the response is awaited.
    let response = poll_fn(|cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(match result {
                Err(_) => Err(HttpError::ConnectionReadTimeout),
                Ok(result) => result.map_err(HttpError::from),
            });
        }
        if let Some(driving) = connection.as_mut() {
            let ended = ready!(Pin::new(driving).poll(cx));
            connection = None;
            if let Err(e) = ended {
                return Poll::Ready(Err(HttpError::from(e)));
            }
        }
        Poll::Pending
    })
    .await?;

    let response = response.map(|incoming| {
        let mut idle = tokio::time::interval(between_bytes_timeout);
        // An interval's first tick is immediate; the first one that counts is a period away.
        idle.reset();
        IdleLimitedBody { incoming, idle }.boxed_unsync()
    });
    let driver = async move {
        let _permits = permits;
        match connection {
            None => Ok(()),
            Some(connection) => connection.await.map_err(|e| {
                if e.is_timeout() {
                    HttpError::HttpResponseTimeout
                } else {
                    HttpError::from(e)
                }
            }),
        }
    };
    Ok((response, Box::new(driver)))
}

/// The addresses `host:port` stands for that are outside `blocked`, for a client that
/// connects by itself (then it must be given one of these, not the name).
pub(crate) async fn checked_addresses(
    host: &str,
    port: u16,
    blocked: &[BlockedNetwork],
    within: Duration,
) -> Result<Vec<SocketAddr>, Failure> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = resolve(host, port, within).await?;
    allowed_addresses(host, addresses, blocked)
}

/// A TCP connection for a client other than HTTP (Redis, ...) to `host:port`: resolved
/// here, connected only on addresses outside `blocked`, within `within`.
pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    blocked: &[BlockedNetwork],
    within: Duration,
) -> Result<TcpStream, Failure> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = resolve(host, port, within).await?;
    let addresses = allowed_addresses(host, addresses, blocked)?;
    let stream = connect(&addresses, within).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// The addresses `host` stands for (an address literal stands for itself).
async fn resolve(host: &str, port: u16, within: Duration) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = tokio::time::timeout(within, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| HttpError::DnsTimeout)?
        .map_err(|e| HttpError::DnsError {
            rcode: Some(e.to_string()),
            info_code: None,
        })?;
    Ok(found.collect())
}

/// `addresses` outside every blocked network; a refusal naming the rule if none is left.
fn allowed_addresses(
    host: &str,
    addresses: Vec<SocketAddr>,
    blocked: &[BlockedNetwork],
) -> Result<Vec<SocketAddr>, Failure> {
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = addresses
        .into_iter()
        .filter(|address| match blocked.iter().find(|b| b.contains(address.ip())) {
            None => true,
            Some(rule) => {
                refusal.get_or_insert_with(|| {
                    format!(
                        "{host} resolves to {}, in the blocked network \"{}\" (`[outbound_networking] block_networks` in the runtime configuration)",
                        address.ip(),
                        rule.rule()
                    )
                });
                false
            }
        })
        .collect();
    match (allowed.is_empty(), refusal) {
        (true, Some(reason)) => Err(Failure::Refused {
            reason,
            code: HttpError::DestinationIpProhibited,
        }),
        (true, None) => Err(HttpError::DestinationNotFound.into()),
        (false, _) => Ok(allowed),
    }
}

/// Connects to the first of `addresses` that answers.
async fn connect(addresses: &[SocketAddr], within: Duration) -> Result<TcpStream, Failure> {
    let attempt = async {
        let mut last_error = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.map_or(HttpError::DestinationNotFound, HttpError::Connect))
    };
    Ok(tokio::time::timeout(within, attempt)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)??)
}

/// A TLS connection to `host` over `tcp`, made as `config` says, within `within`.
pub(crate) async fn tls(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
    within: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(HttpError::InvalidDnsNameError)?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    Ok(tokio::time::timeout(within, handshake)
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Tls)?)
}

/// A response body that fails once no bytes arrive for its between-bytes timeout.
struct IdleLimitedBody {
    incoming: Incoming,
    idle: tokio::time::Interval,
}

impl http_body::Body for IdleLimitedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.idle.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(HttpError::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.idle.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_resolving_only_into_blocked_networks_is_refused_naming_the_rule() {
        let blocked = [BlockedNetwork::parse("private").unwrap()];
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let public: SocketAddr = "93.184.216.34:80".parse().unwrap();
        match allowed_addresses("example.test", vec![local], &blocked) {
            Err(Failure::Refused { reason, .. }) => {
                assert!(
                    reason.contains("127.0.0.1") && reason.contains("\"private\""),
                    "{reason}"
                )
            }
            _ => panic!("must be refused"),
        }
        let kept = allowed_addresses("example.test", vec![local, public], &blocked);
        assert!(matches!(kept, Ok(addresses) if addresses == vec![public]));
    }

    #[test]
    fn an_instance_gets_at_most_its_share_of_connections() {
        let instance = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_INSTANCE));
        let component = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_COMPONENT));
        let held: Vec<_> = (0..MAX_CONNECTIONS_PER_INSTANCE)
            .map(|_| reserve_connection(&instance, &component).ok().unwrap())
            .collect();
        assert!(matches!(
            reserve_connection(&instance, &component),
            Err(Failure::Refused { .. })
        ));
        drop(held);
        assert!(reserve_connection(&instance, &component).is_ok());
        // Other instances of the component share its cap.
        let instances: Vec<_> = (0..=MAX_CONNECTIONS_PER_COMPONENT / MAX_CONNECTIONS_PER_INSTANCE)
            .map(|_| Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_INSTANCE)))
            .collect();
        let held: Vec<_> = instances
            .iter()
            .flat_map(|i| {
                (0..MAX_CONNECTIONS_PER_INSTANCE).map(|_| reserve_connection(i, &component))
            })
            .collect();
        let granted = held.iter().filter(|r| r.is_ok()).count();
        assert_eq!(granted, MAX_CONNECTIONS_PER_COMPONENT);
    }
}
