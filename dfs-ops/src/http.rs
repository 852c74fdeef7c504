//! A tiny HTTP/1.0 server for the daemons' plain-TCP side doors: `GET /metrics` for
//! Prometheus and the coordinator's cluster view.
//!
//! Both serve one small request and one answer per connection, so a whole HTTP library
//! is not needed: read the request head (capped at 8 KiB and 5 seconds, so a slow or
//! hostile client cannot hold memory or a task for long), hand a parsed [`Request`] to the
//! caller's handler, write its [`Response`], close the connection. Request bodies are
//! never read: every endpoint here is a `GET`. There is no TLS: bind these endpoints to
//! an address only the people and programs meant to use them can reach.

use anyhow::{Context, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// Largest request head we read.
pub const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds a listener; `what` names it in the error ("metrics", "cluster view").
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the {what} listener on {addr}"))
}

/// The parts of a request head the handlers look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`... as sent.
    pub method: String,
    /// The target's path, without the query (`/api/where`).
    pub path: String,
    /// The query string after `?`, still percent-encoded (see [`Request::query_param`]).
    pub query: String,
    /// Header names in lower case, values trimmed, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Parses a request head (the request line and header lines). `None` if the request
    /// line is not `METHOD TARGET [VERSION]`.
    pub fn parse(head: &str) -> Option<Request> {
        let mut lines = head.lines();
        let mut parts = lines.next()?.split_whitespace();
        let (method, target) = (parts.next()?, parts.next()?);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
        })
    }

    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of the first `name=value` pair of the query string.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| percent_decode(k) == name)
            .map(|(_, v)| percent_decode(v))
    }
}

/// Decodes `%XX` escapes and `+` (a space, in a query string). A malformed escape is kept
/// as it is; bytes that do not form UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status line after the version, e.g. `200 OK`.
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn new(status: &'static str, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body,
        }
    }

    /// A plain-text answer (errors, hints).
    pub fn text(status: &'static str, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, one task per connection.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F, shutdown: impl Future<Output = ()>)
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send,
{
    let handler = Arc::new(handler);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    debug!("failed to accept an HTTP connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &*handler).await {
                debug!(%peer, "HTTP request failed: {e:#}");
            }
        });
    }
}

async fn answer<F, Fut>(mut stream: TcpStream, handler: &F) -> Result<()>
where
    F: Fn(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .context("request head timed out")??;
    let (response, head_only) = match Request::parse(&head) {
        Some(req) => {
            let head_only = req.method == "HEAD";
            (handler(req).await, head_only)
        }
        None => (
            Response::text("400 Bad Request", "bad request line\n"),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.0 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if !head_only {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Reads until the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> Result<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break; // the client finished sending: take what we have
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        anyhow::ensure!(buf.len() <= MAX_HEAD, "request head over {MAX_HEAD} bytes");
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Sends `GET path` with extra header lines (`"Authorization: Bearer x"`) and returns the
/// status line and the body. For tests and for checking an endpoint from Rust; `curl`
/// does the same.
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[&str]) -> Result<(String, String)> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    let mut req = format!("GET {path} HTTP/1.0\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("response without a blank line after the head")?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

/// [`get_with`] without extra headers.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(String, String)> {
    get_with(addr, path, &[]).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_a_request_head() {
        let r = Request::parse(
            "GET /api/where?path=%2Fa%20b%2Fc+d&x HTTP/1.1\r\nHost: h\r\nAuthorization:  Bearer t \r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/api/where"));
        assert_eq!(r.query_param("path").as_deref(), Some("/a b/c d"));
        assert_eq!(r.query_param("x").as_deref(), Some(""));
        assert_eq!(r.query_param("y"), None);
        assert_eq!(r.header("authorization"), Some("Bearer t"));
        assert!(Request::parse("").is_none());
        assert!(Request::parse("GET\r\n\r\n").is_none());
        // Malformed escapes are kept, not rejected or panicked on.
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[tokio::test]
    async fn serves_a_handler_and_cuts_off_huge_heads() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), "test").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            |req: Request| async move {
                match req.path.as_str() {
                    "/echo" => Response::text("200 OK", req.query_param("q").unwrap_or_default()),
                    _ => Response::text("404 Not Found", "no\n"),
                }
            },
            std::future::pending(),
        ));
        let (status, body) = get(addr, "/echo?q=hi%21").await.unwrap();
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.0 200 OK", "hi!"));
        let (status, _) = get(addr, "/nope").await.unwrap();
        assert_eq!(status, "HTTP/1.0 404 Not Found");

        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&vec![b'a'; 64 << 10]).await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "answered an oversized request");
    }
}
