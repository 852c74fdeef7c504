//! `GET /metrics` over plain HTTP/1.0, enough for Prometheus to scrape, on the shared
//! tiny server in [`crate::http`]. The endpoint is plain TCP without TLS: bind it to an
//! address only your monitoring can reach.

use super::Registry;
use crate::http::{Request, Response};
use anyhow::Result;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use crate::http::get;

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    crate::http::bind(addr, "metrics").await
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
    let handler = move |req: Request| {
        let (registry, refresh) = (registry.clone(), refresh.clone());
        async move {
            match (req.method.as_str(), req.path.as_str()) {
                ("GET" | "HEAD", "/metrics") => {
                    refresh().await;
                    Response::new(
                        "200 OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        registry.render(),
                    )
                }
                ("GET" | "HEAD", _) => Response::text("404 Not Found", "try /metrics\n"),
                _ => Response::text("405 Method Not Allowed", "GET /metrics only\n"),
            }
        }
    };
    crate::http::serve(listener, handler, shutdown).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

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
