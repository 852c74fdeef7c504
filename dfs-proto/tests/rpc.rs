#![allow(clippy::unwrap_used)]
//! The request/response transport over real QUIC on loopback: mutual TLS, deadlines,
//! restarts, and a graceful stop that answers what it has read.

use dfs_proto::access::Role;
use dfs_proto::rpc::{
    client_endpoint, serve, serve_with, server_endpoint, server_endpoint_keeping_resets, Handler,
    Peer, RpcClient, ServerOptions,
};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{ErrorCode, WireError, WireResult};
use std::sync::Arc;
use std::time::Duration;

struct Echo;
impl Handler<String, String> for Echo {
    async fn handle(&self, peer: &Peer, req: String) -> WireResult<String> {
        if req == "fail" {
            return Err(WireError::not_found("nothing"));
        }
        Ok(format!("{req} from {:?}", peer.roles))
    }
}

fn certs() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(d.path(), "t", 1).unwrap();
    d
}

#[tokio::test]
async fn mutual_tls_round_trip_and_refusal() {
    let d = certs();
    let server_tls = ClusterTls::load_dir(d.path(), "coord").unwrap();
    let ep = server_endpoint(&server_tls, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap().to_string();
    tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));

    let client_tls = ClusterTls::load_dir(d.path(), "client").unwrap();
    let c = RpcClient::new(client_endpoint(&client_tls).unwrap(), Role::Coord);
    let r: String = c
        .call(&addr, &"hi".to_string(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r, "hi from [Client]");
    let e = c
        .call::<_, String>(&addr, &"fail".to_string(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    // Dialling the coordinator while expecting a node certificate fails.
    let wrong = RpcClient::new(client_endpoint(&client_tls).unwrap(), Role::Node);
    let e = wrong
        .call::<_, String>(&addr, &"hi".to_string(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);

    // A client whose certificate comes from another cluster's CA is refused.
    let other = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(other.path(), "other", 0).unwrap();
    let mut mixed = ClusterTls::load_dir(other.path(), "client").unwrap();
    // Trust our CA (so the server verifies), but present the foreign certificate.
    mixed = ClusterTls::load(
        &d.path().join("ca.crt"),
        &other.path().join("client.crt"),
        &other.path().join("client.key"),
    )
    .unwrap_or(mixed);
    let foreign = RpcClient::new(client_endpoint(&mixed).unwrap(), Role::Coord);
    let e = foreign
        .call::<_, String>(&addr, &"hi".to_string(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
}

#[tokio::test]
async fn deadline_bounds_a_silent_server() {
    // A UDP socket that never answers: the handshake cannot complete.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let d = certs();
    let tls = ClusterTls::load_dir(d.path(), "client").unwrap();
    let c = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    let t = std::time::Instant::now();
    let e = c
        .call::<_, String>(&addr, &"hi".to_string(), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// A server killed outright (its runtime dropped: no CONNECTION_CLOSE goes out, as
/// with kill -9) and started again on the same port with the same reset key: the
/// client's next call on its old connection is reset by the new process and redone
/// on a fresh connection at once, not after its deadline.
#[test]
fn a_restarted_server_with_the_same_reset_key_is_found_at_once() {
    let d = certs();
    let key = dfs_proto::reset_key::load_or_create(d.path()).unwrap();
    let server_tls = ClusterTls::load_dir(d.path(), "coord").unwrap();
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = first.block_on(async {
        let ep = server_endpoint_keeping_resets(&server_tls, "127.0.0.1:0".parse().unwrap(), &key)
            .unwrap();
        let addr = ep.local_addr().unwrap();
        tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));
        addr
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client_tls = ClusterTls::load_dir(d.path(), "client").unwrap();
    let c =
        rt.block_on(async { RpcClient::new(client_endpoint(&client_tls).unwrap(), Role::Coord) });
    let a = addr.to_string();
    let hi = "hi".to_string();
    rt.block_on(async {
        let r: String = c.call(&a, &hi, Duration::from_secs(5)).await.unwrap();
        assert_eq!(r, "hi from [Client]");
    });
    // "kill -9": the process's tasks and socket vanish without a word.
    drop(first);
    rt.block_on(async {
        let ep = server_endpoint_keeping_resets(&server_tls, addr, &key).unwrap();
        tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));
        let t = std::time::Instant::now();
        let r: String = c
            .call_patiently(
                &a,
                &hi,
                Duration::from_secs(8),
                Duration::from_secs(8),
                true,
            )
            .await
            .unwrap();
        assert_eq!(r, "hi from [Client]");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    });
}

/// Records every request it runs (under its own name) and sleeps for `sleepN` requests.
struct Recorder {
    name: &'static str,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Handler<String, String> for Recorder {
    async fn handle(&self, _peer: &Peer, req: String) -> WireResult<String> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("{}:{req}", self.name));
        if let Some(ms) = req.strip_prefix("sleep").and_then(|n| n.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(format!("{req} by {}", self.name))
    }
}

/// A server on `addr` (port 0 for any) with the reset key of `certs`, stopped when the
/// returned sender fires or is dropped; the join handle ends when it has stopped.
async fn start_recorder(
    certs: &std::path::Path,
    addr: std::net::SocketAddr,
    name: &'static str,
    grace: Duration,
) -> (
    std::net::SocketAddr,
    Arc<std::sync::Mutex<Vec<String>>>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let key = dfs_proto::reset_key::load_or_create(certs).unwrap();
    let tls = ClusterTls::load_dir(certs, "coord").unwrap();
    // The previous server's socket may take a moment to be released.
    let mut tries = 0;
    let ep = loop {
        match server_endpoint_keeping_resets(&tls, addr, &key) {
            Ok(ep) => break ep,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("bind {addr}: {e:#}"),
        }
    };
    let local = ep.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = Arc::new(Recorder {
        name,
        seen: seen.clone(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let opts = ServerOptions {
        grace,
        ..ServerOptions::default()
    };
    let done = tokio::spawn(serve_with(ep, handler, opts, async {
        let _ = rx.await;
    }));
    (local, seen, tx, done)
}

fn client(certs: &std::path::Path) -> Arc<RpcClient> {
    let tls = ClusterTls::load_dir(certs, "client").unwrap();
    Arc::new(RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord))
}

/// A stopping server answers the request it is running, then stops; the slow call
/// succeeds instead of being cut off (what `endpoint.close()` alone used to do).
#[tokio::test]
async fn stopping_answers_the_requests_already_read() {
    let d = certs();
    let (addr, seen, stop, done) = start_recorder(
        d.path(),
        "127.0.0.1:0".parse().unwrap(),
        "first",
        Duration::from_secs(5),
    )
    .await;
    let c = client(d.path());
    let a = addr.to_string();
    let slow = {
        let (c, a) = (c.clone(), a.clone());
        tokio::spawn(async move {
            c.call::<_, String>(&a, &"sleep600".to_string(), Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["first:sleep600"],
        "request not read yet"
    );
    let t = std::time::Instant::now();
    stop.send(()).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), "sleep600 by first");
    tokio::time::timeout(Duration::from_secs(3), done)
        .await
        .expect("server stops once its requests are answered")
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Stopped means stopped: nobody answers any more.
    let e = c
        .call::<_, String>(&a, &"late".to_string(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable);
}

/// A request sent on a connection whose server is draining is never read; the server's
/// close code says so, and the client sends it again, to the next process, even though
/// it is not idempotent. Each server saw exactly the requests it answered: nothing ran
/// twice, nothing was lost.
#[tokio::test]
async fn a_request_sent_while_draining_runs_once_on_the_next_process() {
    let d = certs();
    let grace = Duration::from_secs(5);
    let (addr, first_seen, stop, done) =
        start_recorder(d.path(), "127.0.0.1:0".parse().unwrap(), "first", grace).await;
    let c = client(d.path());
    let a = addr.to_string();
    let slow = {
        let (c, a) = (c.clone(), a.clone());
        tokio::spawn(async move {
            c.call::<_, String>(&a, &"sleep800".to_string(), Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let once = {
        let (c, a) = (c.clone(), a.clone());
        tokio::spawn(async move {
            c.call_patiently::<_, String>(
                &a,
                &"once".to_string(),
                Duration::from_secs(2),
                Duration::from_secs(10),
                false,
            )
            .await
        })
    };
    assert_eq!(slow.await.unwrap().unwrap(), "sleep800 by first");
    done.await.unwrap();
    // The next process, on the same port with the same reset key.
    let (_, second_seen, _stop2, _done2) = start_recorder(d.path(), addr, "second", grace).await;
    assert_eq!(once.await.unwrap().unwrap(), "once by second");
    assert_eq!(*first_seen.lock().unwrap(), ["first:sleep800"]);
    assert_eq!(*second_seen.lock().unwrap(), ["second:once"]);
}

/// When the grace period ends with a request still running, the connection is cut with
/// a code that says the request may have run: a request that is not idempotent is not
/// repeated, and the caller gets an error instead of a silent second execution.
#[tokio::test]
async fn a_request_still_running_after_the_grace_period_is_not_repeated() {
    let d = certs();
    let (addr, seen, stop, done) = start_recorder(
        d.path(),
        "127.0.0.1:0".parse().unwrap(),
        "first",
        Duration::from_millis(200),
    )
    .await;
    let c = client(d.path());
    let a = addr.to_string();
    let stuck = {
        let (c, a) = (c.clone(), a.clone());
        tokio::spawn(async move {
            c.call_patiently::<_, String>(
                &a,
                &"sleep5000".to_string(),
                Duration::from_secs(8),
                Duration::from_secs(8),
                false,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t = std::time::Instant::now();
    stop.send(()).unwrap();
    let e = stuck.await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    tokio::time::timeout(Duration::from_secs(3), done)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["first:sleep5000"]);
}
