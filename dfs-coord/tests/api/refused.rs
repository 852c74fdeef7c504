//! The coordinator's port against peers without a valid certificate, and revocation:
//! served with `dfs_coord::run` over real QUIC.

use super::served::Served;
use super::*;
use dfs_pki::intruder::{attempt, Intruder};
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use std::path::Path;
use std::time::Duration;

const D: Duration = Duration::from_secs(5);

/// A coordinator of its own, with its metadata in `meta/` of a temporary directory
/// (the coordinator creates it, so its mode can be checked).
async fn serve(certs: &Path) -> (Served, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    (
        super::served::serve(certs, &data.path().join("meta"), |_| {}).await,
        data,
    )
}

fn requests() -> Vec<(&'static str, Vec<u8>)> {
    [
        (
            "read",
            CoordRequest::Lookup {
                parent: ROOT,
                name: "x".into(),
            },
        ),
        (
            "write",
            CoordRequest::Create {
                parent: ROOT,
                name: "x".into(),
                kind: FileKind::File,
                perm: 0o644,
                rdev: 0,
                caller: USER,
            },
        ),
        (
            "list",
            CoordRequest::ReadDir {
                ino: ROOT,
                after: None,
                limit: 10,
            },
        ),
        (
            "register",
            CoordRequest::Register {
                node: NodeId(9),
                addr: "127.0.0.1:9".into(),
                stats: stats(1 << 30),
            },
        ),
    ]
    .into_iter()
    .map(|(w, r)| (w, dfs_proto::frame::encode(&r).unwrap()))
    .collect()
}

#[tokio::test]
async fn peers_without_a_valid_cluster_certificate_get_nothing() {
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let (s, data) = serve(certs.path()).await;
    let addr = s.addr.parse().unwrap();
    // The metadata directory is the coordinator's alone.
    let m = std::fs::metadata(data.path().join("meta")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&m) & 0o777, 0o700);
    // Control: the same raw path with a real certificate gets answers.
    let good = ClusterTls::load_dir(certs.path(), "client").unwrap();
    for (what, frame) in requests() {
        let r = attempt(good.client_config().unwrap(), addr, Role::Coord, &frame).await;
        assert!(r.is_ok(), "{what} with a valid certificate: {r:?}");
    }
    for who in Intruder::ALL {
        for (what, frame) in requests() {
            let cfg = who.client_config(certs.path()).unwrap();
            match attempt(cfg, addr, Role::Coord, &frame).await {
                Ok(r) => panic!("{who:?} could {what}: {r:?}"),
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.contains("handshake failed"), "{who:?} {what}: {e}");
                }
            }
        }
    }
    // Nothing the intruders sent took effect: the control's Create made "x" (its
    // Register was refused: a client certificate), and the intruders' registrations are
    // nowhere.
    let admin = ClusterTls::load_dir(certs.path(), "admin").unwrap();
    let c = RpcClient::new(client_endpoint(&admin).unwrap(), Role::Coord);
    let r = c
        .call::<_, CoordResponse>(&s.addr, &CoordRequest::Status, D)
        .await;
    match r {
        Ok(CoordResponse::Status(st)) => {
            assert!(st.nodes.is_empty(), "{:?}", st.nodes);
            assert_eq!(st.inodes, 2, "the root and the control's file");
        }
        other => panic!("{other:?}"),
    }
    s.stop().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let (s, _data) = serve(certs.path()).await;
    let client_for = |name: &str| {
        let tls = ClusterTls::load_dir(certs.path(), name).unwrap();
        RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord)
    };
    let statfs = CoordRequest::StatFs;
    let c = client_for("client");
    c.call::<_, CoordResponse>(&s.addr, &statfs, D)
        .await
        .unwrap();

    // `dfs-coord revoke`, the real binary, appends the certificate to certs/revoked.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dfs-coord"))
        .args(["revoke", "--certs"])
        .arg(certs.path())
        .arg("client")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let e = c
        .call::<_, CoordResponse>(&s.addr, &statfs, D)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "warm connection: {e}");
    let e = client_for("client")
        .call::<_, CoordResponse>(&s.addr, &statfs, D)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "new connection: {e}");
    // The administrator's certificate still works.
    client_for("admin")
        .call::<_, CoordResponse>(&s.addr, &statfs, D)
        .await
        .unwrap();
    s.stop().await;
}
