//! Resource limits of `rpc::serve_with`: peers that hold connections and streams open
//! without sending, or send one byte a second, do not keep the server from answering a
//! normal client promptly; they lose their streams after the request deadline, their
//! idle connections are closed, and connections beyond the cap are refused.
//!
//! The misbehaving peers here hold valid client certificates: the worst case, since
//! peers without one never get past the handshake.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::rpc::{
    client_endpoint, serve_with, server_endpoint, Handler, Limits, Peer, RpcClient, ServerOptions,
};
use dfs_proto::tls::ClusterTls;
use dfs_proto::{ErrorCode, WireResult};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Echo;
impl Handler<String, String> for Echo {
    async fn handle(&self, _: &Peer, req: String) -> WireResult<String> {
        Ok(req)
    }
}

fn start(certs: &std::path::Path, limits: Limits) -> SocketAddr {
    let tls = ClusterTls::load_dir(certs, "coord").unwrap();
    let ep = server_endpoint(&tls, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    let opts = ServerOptions {
        limits,
        ..ServerOptions::new(&tls)
    };
    tokio::spawn(serve_with(ep, Arc::new(Echo), opts, std::future::pending()));
    addr
}

/// A raw QUIC endpoint with the client certificate, for misbehaving on purpose.
fn raw_endpoint(certs: &std::path::Path) -> quinn::Endpoint {
    let tls = ClusterTls::load_dir(certs, "client").unwrap();
    client_endpoint(&tls).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_peers_do_not_slow_a_normal_client() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 0).unwrap();
    let request_timeout = Duration::from_secs(3);
    let addr = start(
        certs.path(),
        Limits {
            max_connections: 100,
            max_connections_per_ip: 100,
            request_timeout,
            idle_connection_timeout: Duration::from_secs(60),
            max_request_bytes: 64 << 20,
        },
    );
    let ep = raw_endpoint(certs.path());
    // 30 connections that never send anything.
    let mut idle = Vec::new();
    for _ in 0..30 {
        idle.push(ep.connect(addr, "dfs-coord").unwrap().await.unwrap());
    }
    // 30 connections × 20 streams, each announcing a frame of the full cap (8 MiB; 4.8 GB
    // in all, far beyond the 64 MiB budget) and then sending one byte a second.
    let mut trickle = Vec::new();
    for _ in 0..30 {
        let conn = ep.connect(addr, "dfs-coord").unwrap().await.unwrap();
        for _ in 0..20 {
            let (mut send, recv) = conn.open_bi().await.unwrap();
            send.write_all(&dfs_proto::frame::MAX_FRAME.to_le_bytes())
                .await
                .unwrap();
            trickle.push(tokio::spawn(async move {
                let mut send = send;
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if send.write_all(&[0]).await.is_err() {
                        break;
                    }
                }
            }));
            idle.push(conn.clone());
            let _ = recv;
        }
    }
    // Keep one trickling stream's receive side to see what the server tells it.
    let conn = ep.connect(addr, "dfs-coord").unwrap().await.unwrap();
    let (mut send, mut slow_recv) = conn.open_bi().await.unwrap();
    send.write_all(&1000u32.to_le_bytes()).await.unwrap();

    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let client = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    let addr_s = addr.to_string();
    let mut worst = Duration::ZERO;
    for k in 0..20 {
        let t = Instant::now();
        let r: String = client
            .call(&addr_s, &format!("hello {k}"), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(r, format!("hello {k}"));
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "normal client, 20 requests beside 30 idle connections and 600 trickling streams: \
         slowest {worst:?}"
    );
    assert!(
        worst < Duration::from_secs(2),
        "slowest request took {worst:?}"
    );

    // The trickling stream is answered with an error once the deadline has passed.
    let t = Instant::now();
    let resp = tokio::time::timeout(request_timeout * 3, slow_recv.read_to_end(1 << 20))
        .await
        .expect("the server never gave up on a slow stream")
        .unwrap();
    let answer: WireResult<String> = dfs_proto::frame::decode(&resp[4..]).unwrap();
    let e = answer.unwrap_err();
    eprintln!("slow stream after {:?}: {e}", t.elapsed());
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("not received within"), "{e}");
    for t in trickle {
        t.abort();
    }
    drop(send);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_and_idle_ones_closed() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 0).unwrap();
    let addr = start(
        certs.path(),
        Limits {
            max_connections: 4,
            max_connections_per_ip: 4,
            request_timeout: Duration::from_secs(5),
            idle_connection_timeout: Duration::from_millis(800),
            max_request_bytes: 64 << 20,
        },
    );
    let ep = raw_endpoint(certs.path());
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(ep.connect(addr, "dfs-coord").unwrap().await.unwrap());
    }
    let refused = ep.connect(addr, "dfs-coord").unwrap().await;
    eprintln!("fifth connection: {refused:?}");
    assert!(refused.is_err(), "a fifth connection was accepted");

    // The four say nothing: the server closes them after the idle timeout, and their
    // slots are free again.
    for c in &held {
        let reason = tokio::time::timeout(Duration::from_secs(5), c.closed())
            .await
            .expect("idle connection not closed");
        eprintln!("idle connection closed: {reason}");
    }
    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let client = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    let r: String = client
        .call(
            &addr.to_string(),
            &"back".to_string(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(r, "back");
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let certs = tempfile::tempdir().unwrap();
    pki::init_dir(certs.path(), "t", 0).unwrap();
    let addr = start(
        certs.path(),
        Limits {
            max_connections: 10,
            max_connections_per_ip: 2,
            ..Limits::default()
        },
    );
    let ep = raw_endpoint(certs.path());
    let a = ep.connect(addr, "dfs-coord").unwrap().await.unwrap();
    let b = ep.connect(addr, "dfs-coord").unwrap().await.unwrap();
    let third = ep.connect(addr, "dfs-coord").unwrap().await;
    assert!(
        third.is_err(),
        "a third connection from 127.0.0.1 was accepted"
    );
    // Closing one gives its place back.
    a.close(0u32.into(), b"bye");
    drop(a);
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(c) = ep.connect(addr, "dfs-coord").unwrap().await {
            again = Some(c);
            break;
        }
    }
    assert!(again.is_some(), "the freed place was never given back");
    drop(b);
}
