//! An HTTP proxy for tests, as a corporate egress proxy behaves: `CONNECT host:port` tunnels
//! (HTTPS), absolute-form requests (`GET http://host/…`, plain HTTP) forwarded as they are, Basic
//! credentials when asked for (407 otherwise), and a switch that refuses everything (403). It
//! counts what went through it per `host:port`, and routes hosts to test peers: a host it has a
//! route for goes to that address, any other to 127.0.0.1 at the port asked (every test peer
//! listens there).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct State {
    /// `host:port` → requests (CONNECT tunnels and forwarded requests) that went through.
    through: HashMap<String, usize>,
    /// Host → the address it is routed to.
    routes: HashMap<String, SocketAddr>,
    credentials: Option<(String, String)>,
    refuse: bool,
    /// Authorization headers seen, to check credentials are sent (and nothing else leaks).
    authorizations: Vec<String>,
}

/// The proxy; stops when dropped.
#[derive(Debug)]
pub struct ConnectProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port>`, with `user:password@` when credentials are asked for.
    pub fn url(&self) -> String {
        match &self.lock().credentials {
            Some((user, password)) => format!("http://{user}:{password}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The proxy's address without credentials, as messages should name it.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Requests that went through for `host:port`.
    pub fn count(&self, host_port: &str) -> usize {
        self.lock().through.get(host_port).copied().unwrap_or(0)
    }

    /// Every `host:port` that went through, with its count.
    pub fn hosts(&self) -> HashMap<String, usize> {
        self.lock().through.clone()
    }

    /// Requests that went through, in all.
    pub fn total(&self) -> usize {
        self.lock().through.values().sum()
    }

    /// Sends `host` (any port) to `addr`.
    pub fn route(&self, host: &str, addr: SocketAddr) {
        self.lock().routes.insert(host.to_owned(), addr);
    }

    /// Asks for Basic credentials (407 without them).
    pub fn require_credentials(&self, user: &str, password: &str) {
        self.lock().credentials = Some((user.to_owned(), password.to_owned()));
    }

    /// Refuses every request with 403, as a proxy whose policy forbids the destination.
    pub fn refuse(&self) {
        self.lock().refuse = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn serve(mut client: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await? == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_owned());
    let host_port = if method == "CONNECT" {
        target.to_owned()
    } else {
        // Absolute form: http://host[:port]/path
        let rest = target.strip_prefix("http://").unwrap_or(target);
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") }
    };
    let (refuse, expected, route) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = &authorization {
            state.authorizations.push(value.clone());
        }
        let host = host_port.rsplit_once(':').map_or(host_port.as_str(), |(h, _)| h).to_owned();
        let expected = state.credentials.as_ref().map(|(u, p)| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
        });
        (state.refuse, expected, state.routes.get(&host).copied())
    };
    if refuse {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
        return Ok(());
    }
    if expected.is_some() && authorization != expected {
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let port: u16 = host_port.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(80);
    let destination = route.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    let Ok(mut upstream) = TcpStream::connect(destination).await else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    *state.lock().unwrap_or_else(PoisonError::into_inner).through.entry(host_port).or_default() += 1;
    if method == "CONNECT" {
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    } else {
        // Forwarded as it came (servers accept the absolute form), without the credentials,
        // one request per connection: the client's next request may be for another host.
        let mut lines: Vec<&str> = text
            .split("\r\n")
            .filter(|line| {
                let lower = line.to_ascii_lowercase();
                !lower.starts_with("proxy-") && !lower.starts_with("connection:")
            })
            .collect();
        lines.insert(1, "Connection: close");
        let forwarded = lines.join("\r\n");
        upstream.write_all(forwarded.as_bytes()).await?;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}
