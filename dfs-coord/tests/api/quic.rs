//! The coordinator served over real QUIC with mutual TLS.

use super::*;
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use std::time::Duration;

#[tokio::test]
async fn serve_over_quic_and_refuse_client_registry_calls() {
    let certs = tempfile::tempdir().unwrap();
    dfs_pki::init_dir(certs.path(), "t", 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = super::served::serve(certs.path(), data.path(), |_| {}).await;
    let addr = server.addr.clone();

    let tls = ClusterTls::load_dir(certs.path(), "client").unwrap();
    let client = RpcClient::new(client_endpoint(&tls).unwrap(), Role::Coord);
    let d = Duration::from_secs(5);
    let created: CoordResponse = client
        .call(
            &addr,
            &CoordRequest::Create {
                parent: ROOT,
                name: "hello".into(),
                kind: FileKind::File,
                perm: 0o644,
                rdev: 0,
                caller: USER,
            },
            d,
        )
        .await
        .unwrap();
    let CoordResponse::Attr(a) = created else {
        panic!("{created:?}")
    };
    let found: CoordResponse = client
        .call(
            &addr,
            &CoordRequest::Lookup {
                parent: ROOT,
                name: "hello".into(),
            },
            d,
        )
        .await
        .unwrap();
    let CoordResponse::Attr(b) = found else {
        panic!("{found:?}")
    };
    assert_eq!(a, b);

    let refused = client
        .call::<_, CoordResponse>(
            &addr,
            &CoordRequest::Register {
                node: NodeId(1),
                addr: "127.0.0.1:1".into(),
                stats: stats(1),
            },
            d,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unauthorized);

    // A node certificate may register.
    let ntls = ClusterTls::load_dir(certs.path(), "node-1").unwrap();
    let node = RpcClient::new(client_endpoint(&ntls).unwrap(), Role::Coord);
    let r: CoordResponse = node
        .call(
            &addr,
            &CoordRequest::Register {
                node: NodeId(1),
                addr: "127.0.0.1:1".into(),
                stats: stats(1),
            },
            d,
        )
        .await
        .unwrap();
    assert!(matches!(r, CoordResponse::Registered { .. }));

    // `dfs-coord fsck` and `status`, the real binary: healthy (exit 0), then a shard
    // recorded only on a node that does not exist, i.e. missing (exit 2).
    let healthy = cli(certs.path(), &addr, &["fsck", "--json"]).await;
    assert_eq!(healthy.status.code(), Some(0), "{healthy:?}");
    let out = String::from_utf8_lossy(&healthy.stdout).to_string();
    assert!(out.starts_with("{\"shards\":0,\"missing\":[]"), "{out}");
    let committed: CoordResponse = client
        .call(
            &addr,
            &CoordRequest::Commit {
                ino: a.ino,
                size: 3,
                mtime: 1,
                shards: vec![cshard(0, b"abc", &[99])],
                caller: USER,
                set: Default::default(),
            },
            d,
        )
        .await
        .unwrap();
    assert!(matches!(committed, CoordResponse::Attr(_)), "{committed:?}");
    let missing = cli(certs.path(), &addr, &["fsck"]).await;
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let out = String::from_utf8_lossy(&missing.stdout).to_string();
    assert!(out.contains("1 missing"), "{out}");
    let status = cli(certs.path(), &addr, &["status", "--json"]).await;
    let out = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        out.contains("\"state\":\"up\"") && out.contains("\"repair\":{\"in_flight\":0,"),
        "{out}"
    );

    server.stop().await;
}

/// Runs `dfs-coord SUBCOMMAND --coord ADDR --certs DIR [ARGS]` with the admin certificate.
async fn cli(certs: &std::path::Path, addr: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dfs-coord"));
    cmd.arg(args[0])
        .args(["--coord", addr, "--certs"])
        .arg(certs)
        .args(&args[1..]);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}
