//! Routes answered by the trigger itself (`static_response` in a spin.toml): a fixed
//! status, headers and body, checked once at load, sent without an instance.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kite_app::StaticResponse;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

pub(crate) struct StaticBody {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl StaticBody {
    pub(crate) fn new(spec: &StaticResponse) -> anyhow::Result<Self> {
        let status = StatusCode::from_u16(spec.status)
            .map_err(|_| anyhow::anyhow!("static response: invalid status {}", spec.status))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("static response: invalid header name {name:?}"))?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                anyhow::anyhow!("static response: invalid value for header {name}: {value:?}")
            })?;
            headers.append(name, value);
        }
        Ok(StaticBody {
            status,
            headers,
            body: Bytes::from(spec.body.clone()),
        })
    }

    pub(crate) fn response(&self) -> Response<HyperOutgoingBody> {
        let body = Full::new(self.body.clone())
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}
