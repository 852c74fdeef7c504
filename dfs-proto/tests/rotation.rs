//! CA rotation: while `ca.crt` holds both the old and the new cluster CA, certificates
//! from either are accepted, in both directions; once the old CA is dropped, its
//! certificates are refused. (The procedure is in docs/SECURITY.md.)

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use dfs_pki as pki;
use dfs_proto::access::Role;
use dfs_proto::rpc::{client_endpoint, serve, server_endpoint, Handler, Peer, RpcClient};
use dfs_proto::tls::ClusterTls;
use dfs_proto::WireResult;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

struct Echo;
impl Handler<String, String> for Echo {
    async fn handle(&self, _: &Peer, req: String) -> WireResult<String> {
        Ok(req)
    }
}

/// A server with `name`'s certificate from `dir`, trusting the CA file `ca`.
fn start(dir: &Path, name: &str, ca: &Path) -> String {
    let tls = ClusterTls::load(
        ca,
        &dir.join(format!("{name}.crt")),
        &dir.join(format!("{name}.key")),
    )
    .unwrap();
    let ep = server_endpoint(&tls, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap().to_string();
    tokio::spawn(serve(ep, Arc::new(Echo), std::future::pending()));
    addr
}

async fn call(dir: &Path, ca: &Path, addr: &str) -> WireResult<String> {
    let tls = ClusterTls::load(ca, &dir.join("client.crt"), &dir.join("client.key")).unwrap();
    let c = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    c.call(addr, &"hi".to_string(), Duration::from_secs(5))
        .await
}

#[tokio::test]
async fn a_two_ca_bundle_accepts_both_generations() {
    let old = tempfile::tempdir().unwrap();
    let new = tempfile::tempdir().unwrap();
    pki::init_dir(old.path(), "old", 0).unwrap();
    pki::init_dir(new.path(), "new", 0).unwrap();
    let bundle = old.path().join("bundle.crt");
    let mut pem = std::fs::read(old.path().join("ca.crt")).unwrap();
    pem.extend(std::fs::read(new.path().join("ca.crt")).unwrap());
    std::fs::write(&bundle, pem).unwrap();

    // Mid-rotation: an old-generation server and a new-generation one, both trusting
    // the bundle, accept clients of either generation (which also trust the bundle).
    let old_server = start(old.path(), "coord", &bundle);
    let new_server = start(new.path(), "coord", &bundle);
    for server in [&old_server, &new_server] {
        for client in [old.path(), new.path()] {
            call(client, &bundle, server).await.unwrap();
        }
    }
    // After the rotation: a server trusting only the new CA refuses old certificates.
    let done = start(new.path(), "coord", &new.path().join("ca.crt"));
    call(new.path(), &new.path().join("ca.crt"), &done)
        .await
        .unwrap();
    let e = call(old.path(), &bundle, &done).await.unwrap_err();
    assert_eq!(e.code, dfs_proto::ErrorCode::Unavailable, "{e}");
}
