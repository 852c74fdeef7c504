//! `GET /metrics` over plain HTTP/1.0, enough for Prometheus to scrape.
//!
//! A scrape is one small request and one text answer, so a whole HTTP library is not
//! needed: read the request head (capped at 8 KiB and 5 seconds, so a slow or hostile
//! client cannot hold memory or a task for long), answer, close the connection. The
//! endpoint is plain TCP without TLS: bind it to an address only your monitoring can reach.

use super::Registry;
use anyhow::{Context, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

/// Largest request head we read.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind the metrics listener on {addr}"))
}

/// Serves `registry` until `shutdown` resolves. Before each scrape, `refresh` brings the
/// gauges that mirror state kept elsewhere (shards stored, nodes up) up to date, so they
/// cost nothing between scrapes.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    registry: Arc<Registry>,
    refresh: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let refresh = Arc::new(refresh);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    debug!("failed to accept a metrics connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (registry, refresh) = (registry.clone(), refresh.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &registry, &*refresh).await {
                debug!(%peer, "metrics request failed: {e:#}");
            }
        });
    }
}

async fn answer<F, Fut>(mut stream: TcpStream, registry: &Registry, refresh: &F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .context("request head timed out")??;
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            refresh().await;
            ("200 OK", registry.render())
        }
        ("GET" | "HEAD", _) => ("404 Not Found", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "GET /metrics only\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
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

/// Fetches `path` from a metrics endpoint: the status line and the body. For tests and
/// for checking an endpoint by hand from Rust; `curl` does the same.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(String, String)> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("response without a blank line after the head")?;
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn scrape_over_tcp() {
        let registry = Registry::new();
        let c = registry.counter("dfs_test_total", "t", &[]);
        let g = registry.gauge("dfs_test_refreshed", "set before each scrape", &[]);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refreshes = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let r2 = refreshes.clone();
        let g2 = g.clone();
        tokio::spawn(serve(
            listener,
            registry.clone(),
            move || {
                let n = r2.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                g2.set(&[], n);
                async {}
            },
            std::future::pending(),
        ));

        c.inc(&[]);
        let (status, body) = get(addr, "/metrics").await.unwrap();
        assert_eq!(status, "HTTP/1.0 200 OK");
        assert!(body.contains("\ndfs_test_total 1\n"), "{body}");
        assert!(body.contains("\ndfs_test_refreshed 1\n"), "{body}");
        c.inc(&[]);
        let (_, body) = get(addr, "/metrics?x=1").await.unwrap();
        assert!(body.contains("\ndfs_test_total 2\n"), "{body}");
        assert!(body.contains("\ndfs_test_refreshed 2\n"), "{body}");

        let (status, _) = get(addr, "/").await.unwrap();
        assert_eq!(status, "HTTP/1.0 404 Not Found");
        // A client that sends a huge head is cut off, not buffered.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let junk = vec![b'a'; 64 << 10];
        let _ = s.write_all(&junk).await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "answered an oversized request");
    }
}
