//! The live cluster view: a web page served by the coordinator (`--view-listen ADDR`) that
//! shows the nodes, replication, repair progress, recent events and where a chosen file's
//! shards live, refreshed every second.
//!
//! It is a read-only window, not a second API: every answer is computed with the code the
//! `dfs` admin command uses, so the page and `dfs status --json` / `dfs where --json`
//! never disagree.
//!
//! | Request                     | Answer                                              |
//! |-----------------------------|-----------------------------------------------------|
//! | `GET /`                     | the page (`view/index.html`, HTML + CSS + JS inline) |
//! | `GET /api/status`           | `dfs status --json`                                 |
//! | `GET /api/events?after=SEQ` | recent events (`events.rs`) newer than SEQ          |
//! | `GET /api/where?path=/a/b`  | `dfs where --json /a/b`                             |
//!
//! # Who may look
//! The endpoint is plain HTTP, without the cluster's mutual TLS, and it shows file names
//! and the cluster's layout. So by default it may only be bound to a loopback address
//! (reach it from elsewhere through `ssh -L`). Binding any other address needs a token
//! (`--view-token-file`), and then every request must carry it, as
//! `Authorization: Bearer TOKEN` or `?token=TOKEN` (the page passes the token it was
//! opened with on to its own requests). The token travels in clear text: put the view
//! behind a TLS proxy, or keep it on a trusted network.

use crate::admin::conn::{exit_code, Ask, EXIT_REFUSED};
use crate::admin::locate;
use crate::events;
use crate::observe::{self, Observed};
use crate::status::json_string;
use anyhow::{bail, Result};
use dfs_ops::http::{Request, Response};
use dfs_proto::coord_msg::{CoordRequest, CoordResponse};
use dfs_proto::{ErrorCode, WireError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::info;

/// The page, compiled into the binary so that the coordinator needs no files to serve it.
const INDEX_HTML: &str = include_str!("view/index.html");
/// Longest file path `/api/where` accepts (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

/// Refuses a non-loopback `addr` without a token, and an empty token: see the module
/// comment for why.
pub fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<()> {
    match token {
        Some(t) if t.trim().is_empty() => bail!("the cluster view token is empty"),
        None if !addr.ip().is_loopback() => bail!(
            "refusing to serve the cluster view on {addr}: it is not a loopback address and \
             no token is set (--view-token-file); bind 127.0.0.1 or set a token"
        ),
        _ => Ok(()),
    }
}

/// Binds `addr` and serves the view until aborted.
pub async fn start(
    addr: SocketAddr,
    token: Option<String>,
    coord: Arc<impl Observed>,
) -> Result<JoinHandle<()>> {
    check_exposure(addr, token.as_deref())?;
    let listener = dfs_ops::http::bind(addr, "cluster view").await?;
    let auth = if token.is_some() {
        " (token required)"
    } else {
        ""
    };
    info!("cluster view at http://{}/{auth}", listener.local_addr()?);
    let token: Arc<Option<String>> = Arc::new(token);
    let handler = move |req: Request| {
        let (coord, token) = (coord.clone(), token.clone());
        async move { route(&coord, token.as_deref(), req).await }
    };
    Ok(tokio::spawn(dfs_ops::http::serve(
        listener,
        handler,
        std::future::pending(),
    )))
}

/// Answers one request.
pub async fn route(coord: &impl Observed, token: Option<&str>, req: Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::text(
            "405 Method Not Allowed",
            "the cluster view is read-only: GET\n",
        );
    }
    if let Some(t) = token {
        if !authorized(&req, t) {
            return Response::text(
                "401 Unauthorized",
                "this cluster view needs its token: open it as /?token=TOKEN\n",
            );
        }
    }
    match req.path.as_str() {
        "/" | "/index.html" => {
            Response::new("200 OK", "text/html; charset=utf-8", INDEX_HTML.into())
        }
        "/api/status" => match observe::status(coord).await {
            Ok(st) => json("200 OK", crate::status::render_json(&st)),
            Err(e) => json_error("503 Service Unavailable", &e.to_string()),
        },
        "/api/events" => {
            let after = req
                .query_param("after")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            json("200 OK", events::render_json(&coord.events().since(after)))
        }
        "/api/where" => where_(coord, &req).await,
        _ => Response::text(
            "404 Not Found",
            "try / or /api/status, /api/events, /api/where\n",
        ),
    }
}

async fn where_(coord: &impl Observed, req: &Request) -> Response {
    let path = match req.query_param("path") {
        Some(p) if !p.is_empty() && p.len() <= MAX_PATH => p,
        Some(p) if p.len() > MAX_PATH => {
            return json_error("400 Bad Request", "path too long");
        }
        _ => return json_error("400 Bad Request", "missing ?path=/file/in/dfs"),
    };
    // Resolve `.` and `..` as `dfs where` does; no mount table here, so the path is taken
    // as one inside the filesystem.
    let path = locate::fs_path(&path, std::path::Path::new("/"), "");
    match locate::file_map(&Local(coord), &path).await {
        Ok(map) => json("200 OK", locate::render_json(&map)),
        Err(e) => {
            let status = match e.downcast_ref::<WireError>().map(|w| w.code) {
                Some(ErrorCode::NotFound) => "404 Not Found",
                _ if exit_code(&e) == EXIT_REFUSED => "400 Bad Request",
                _ => "503 Service Unavailable",
            };
            // The root cause is the readable part ("no such file or directory"); the
            // context names the internal request.
            json_error(status, &format!("{}: {}", path, e.root_cause()))
        }
    }
}

/// Whether `req` carries `token`, in the `Authorization` header or the query string.
fn authorized(req: &Request, token: &str) -> bool {
    let bearer = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let given = bearer
        .map(str::to_string)
        .or_else(|| req.query_param("token"));
    given.is_some_and(|g| same(g.as_bytes(), token.as_bytes()))
}

/// Compares in time that depends on the lengths only, not on where the first difference
/// is, so response times do not reveal the token a byte at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json(status: &'static str, body: String) -> Response {
    Response::new(status, "application/json", body)
}

fn json_error(status: &'static str, message: &str) -> Response {
    json(status, format!("{{\"error\":{}}}", json_string(message)))
}

/// The view asks the coordinator it runs in directly, without a network hop, as an
/// administrator would: the access table (`access.rs`) still applies.
struct Local<'a, O>(&'a O);

impl<O: Observed> Ask for Local<'_, O> {
    async fn ask(&self, req: CoordRequest, _deadline: Duration) -> Result<CoordResponse> {
        self.0.ask(req).await.map_err(anyhow::Error::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_loopback_without_a_token() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_exposure(lo, None).is_ok());
        assert!(check_exposure(lo6, None).is_ok());
        let e = check_exposure(any, None).unwrap_err();
        assert!(format!("{e}").contains("not a loopback address"), "{e}");
        assert!(check_exposure(any, Some("s3cret")).is_ok());
        assert!(check_exposure(lo, Some(" ")).is_err());
    }

    #[test]
    fn token_in_header_or_query() {
        let req = |head: &str| Request::parse(head).unwrap();
        assert!(authorized(
            &req("GET / HTTP/1.0\r\nAuthorization: Bearer tok\r\n\r\n"),
            "tok"
        ));
        assert!(authorized(&req("GET /?token=tok HTTP/1.0\r\n\r\n"), "tok"));
        assert!(!authorized(&req("GET /?token=to HTTP/1.0\r\n\r\n"), "tok"));
        assert!(!authorized(
            &req("GET / HTTP/1.0\r\nAuthorization: Basic tok\r\n\r\n"),
            "tok"
        ));
        assert!(!authorized(&req("GET / HTTP/1.0\r\n\r\n"), "tok"));
    }
}
