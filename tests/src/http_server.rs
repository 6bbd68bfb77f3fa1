//! A minimal HTTP/1.1 server loop (plain or TLS) for the fake peers, with a handler that sees
//! the whole request.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type Response = http::Response<Full<Bytes>>;

/// A request with its body read.
#[derive(Debug)]
pub struct Request {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    closed: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Goes away as a crashed or firewalled peer does: open connections are cut (a client
    /// mid-request sees a reset or an early end) and new ones are refused.
    pub fn close(&self) {
        self.task.abort();
        self.closed.send_replace(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` on 127.0.0.1 (TLS when `tls` is given) on a free port.
pub async fn serve<H, F>(tls: Option<Arc<rustls::ServerConfig>>, handler: H) -> std::io::Result<Server>
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handler = Arc::new(handler);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (closed, closing) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = Arc::clone(&handler);
            let acceptor = acceptor.clone();
            let mut closing = closing.clone();
            tokio::spawn(async move {
                let connection = async move {
                    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let request = Request {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                            };
                            Ok::<_, std::convert::Infallible>(handler(request).await)
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                };
                // Dropping the connection future closes its socket mid-request.
                tokio::select! {
                    () = connection => {}
                    _ = closing.wait_for(|closed| *closed) => {}
                }
            });
        }
    });
    Ok(Server { addr, task, closed })
}

/// A response with a JSON body.
pub fn json(status: u16, body: &serde_json::Value) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}
