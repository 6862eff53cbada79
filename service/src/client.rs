//! The HTTP client of a `hegpu serve` server: the model's info and parameters, registering
//! evaluation keys, and requests, with the retries a client needs (a busy server's
//! `Retry-After`, keys evicted or lost in a restart registered again).

use crate::server::ModelInfo;
use std::time::Duration;

/// What went wrong with a call.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered with an error: HTTP status, its code and message.
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// The connection or the transfer failed.
    Transport(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server {
                status,
                code,
                message,
            } => write!(f, "the server answered {status} ({code}): {message}"),
            Self::Transport(why) => write!(f, "cannot reach the server: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The server's error code (`unknown_key`, `busy`, `bad_request`, …), if it answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            Self::Transport(_) => None,
        }
    }
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    /// Most times a busy answer (503) is retried.
    pub busy_retries: u32,
}

impl Client {
    /// A client of the server at `url` (`http://host:port`, or `https://` trusting Mozilla's
    /// root certificates, bundled as webpki-roots); each call may take `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self::with_roots(url, timeout, None)
    }

    /// A client that trusts the certificates of the PEM file `roots` (e.g. a server's own
    /// self-signed one) instead of Mozilla's.
    pub fn trusting(url: &str, timeout: Duration, roots: &[u8]) -> Result<Self, ClientError> {
        use ureq::tls::PemItem;
        let certs: Vec<_> = ureq::tls::parse_pem(roots)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(ClientError::Transport(
                "no certificate in the root certificate file".into(),
            ));
        }
        Ok(Self::with_roots(url, timeout, Some(certs)))
    }

    fn with_roots(
        url: &str,
        timeout: Duration,
        roots: Option<Vec<ureq::tls::Certificate<'static>>>,
    ) -> Self {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(roots) = roots {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        Self {
            base: url.trim_end_matches('/').to_string(),
            agent,
            busy_retries: 30,
        }
    }

    /// `GET /v1/info`.
    pub fn info(&self) -> Result<ModelInfo, ClientError> {
        let bytes = self.call("GET", "/v1/info", None)?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// `GET /v1/params`: the parameters' bytes.
    pub fn params(&self) -> Result<Vec<u8>, ClientError> {
        self.call("GET", "/v1/params", None)
    }

    /// `POST /v1/keys`: registers evaluation keys; returns their key id.
    pub fn register(&self, keys: &[u8]) -> Result<String, ClientError> {
        let bytes = self.call("POST", "/v1/keys", Some(keys))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport(e.to_string()))?;
        v["key_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Transport(format!("no key id in {v}")))
    }

    /// `POST /v1/infer/{key_id}`: the framed answer to a framed request.
    pub fn infer(&self, key_id: &str, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.call("POST", &format!("/v1/infer/{key_id}"), Some(request))
    }

    /// [`infer`](Self::infer), registering `keys` again (once) when the server no longer
    /// knows `key_id` (evicted, or restarted); `key_id` is updated.
    pub fn infer_registered(
        &self,
        key_id: &mut String,
        keys: &[u8],
        request: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        match self.infer(key_id, request) {
            Err(e) if e.code() == Some("unknown_key") => {
                *key_id = self.register(keys)?;
                self.infer(key_id, request)
            }
            other => other,
        }
    }

    /// One call, retried while the server is busy (after its `Retry-After`).
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |e: ureq::Error| ClientError::Transport(e.to_string());
        let mut tries = 0;
        loop {
            let mut response = match (method, body) {
                ("POST", Some(b)) => self
                    .agent
                    .post(&url)
                    .header("content-type", "application/octet-stream")
                    .send(b)
                    .map_err(transport)?,
                _ => self.agent.get(&url).call().map_err(transport)?,
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let bytes = response
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .map_err(transport)?;
            if (200..300).contains(&status) {
                return Ok(bytes);
            }
            if status == 503 && tries < self.busy_retries {
                tries += 1;
                std::thread::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(10)));
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(ClientError::Server {
                status,
                code: v["code"].as_str().unwrap_or("http").to_string(),
                message: v["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string()),
            });
        }
    }
}
