//! The real `dfs` binary against a coordinator served over QUIC in this process, with a
//! cluster directory laid out as `tests/cluster.sh` makes it: no FUSE, no root. Checks the
//! JSON, the exit codes and that admin requests need the admin certificate.

use super::*;
use dfs_proto::rpc::{client_endpoint, RpcClient};
use dfs_proto::tls::ClusterTls;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What one run of `dfs` did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `dfs --cluster DIR ARGS...` off the async runtime (the coordinator must keep
/// serving meanwhile). On an unexpected exit code the test fails showing everything.
async fn dfs(dir: &Path, args: &[&str], want: i32) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dfs"));
    cmd.arg("--cluster").arg(dir).args(args);
    cmd.env_remove("DFS_CLUSTER");
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(
        run.code, want,
        "{shown}\nexit {}\n--- stdout\n{}\n--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dfs_status_where_drain_remove_against_a_real_coordinator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let certs = dir.join("certs");
    dfs_pki::init_dir(&certs, "t", 1).unwrap();
    std::fs::create_dir_all(dir.join("coord")).unwrap();
    // The address file lands in coord/addr, where `dfs` looks for it.
    let server = super::served::serve(&certs, &dir.join("coord"), |_| {}).await;
    let addr = server.addr.clone();
    let d = Duration::from_secs(5);

    // A node registers (with node-1's certificate) and a client creates an empty file.
    let node = RpcClient::new(
        client_endpoint(&ClusterTls::load_dir(&certs, "node-1").unwrap()).unwrap(),
        Role::Coord,
    );
    let r: CoordResponse = node
        .call(
            &addr,
            &CoordRequest::Register {
                node: NodeId(0xabcd_0000_0000_0001),
                addr: "127.0.0.1:9".into(),
                stats: stats(1 << 30),
            },
            d,
        )
        .await
        .unwrap();
    assert!(matches!(r, CoordResponse::Registered { .. }), "{r:?}");
    let client = RpcClient::new(
        client_endpoint(&ClusterTls::load_dir(&certs, "client").unwrap()).unwrap(),
        Role::Coord,
    );
    let r: CoordResponse = client
        .call(
            &addr,
            &CoordRequest::Create {
                parent: ROOT,
                name: "empty".into(),
                kind: FileKind::File,
                perm: 0o644,
                rdev: 0,
                caller: USER,
            },
            d,
        )
        .await
        .unwrap();
    assert!(matches!(r, CoordResponse::Attr(_)), "{r:?}");

    let st = dfs(dir, &["status", "--json"], 0).await;
    assert!(
        st.stdout
            .contains("\"id\":\"abcd000000000001\",\"address\":\"127.0.0.1:9\",\"state\":\"up\""),
        "{}",
        st.stdout
    );
    let table = dfs(dir, &["status"], 0).await;
    assert!(table.stdout.contains("1 of 1 nodes up"), "{}", table.stdout);

    let w = dfs(dir, &["where", "/empty", "--json"], 0).await;
    assert!(
        w.stdout.contains("\"path\":\"/empty\"") && w.stdout.contains("\"shards\":[]"),
        "{}",
        w.stdout
    );
    let missing = dfs(dir, &["where", "/no/such/file"], 4).await;
    assert!(
        missing.stderr.contains("look up \"no\""),
        "{}",
        missing.stderr
    );
    let dir_is_not_a_file = dfs(dir, &["where", "/"], 4).await;
    assert!(
        dir_is_not_a_file.stderr.contains("not a regular file"),
        "{}",
        dir_is_not_a_file.stderr
    );
    dfs(dir, &["fsck"], 0).await;
    dfs(dir, &["node", "drain", "ffff000000000000"], 4).await;

    // A certificate without the admin role may neither look nor drain (access.rs).
    let not_admin = dir.join("not-admin");
    std::fs::create_dir_all(not_admin.join("certs")).unwrap();
    std::fs::copy(certs.join("ca.crt"), not_admin.join("certs/ca.crt")).unwrap();
    std::fs::copy(certs.join("client.crt"), not_admin.join("certs/admin.crt")).unwrap();
    std::fs::copy(certs.join("client.key"), not_admin.join("certs/admin.key")).unwrap();
    std::fs::write(not_admin.join("coord-addr"), format!("{addr}\n")).unwrap();
    let looked = dfs(&not_admin, &["status"], 4).await;
    assert!(looked.stderr.contains("dfs-admin"), "{}", looked.stderr);
    let refused = dfs(&not_admin, &["node", "drain", "abcd", "--no-wait"], 4).await;
    assert!(
        refused
            .stderr
            .contains("needs a certificate with role dfs-admin"),
        "{}",
        refused.stderr
    );

    // Drain by prefix (nothing to move: it is done at once), then remove.
    let drained = dfs(dir, &["node", "drain", "abcd", "--json"], 0).await;
    assert!(
        drained.stdout.contains("\"drained\":true"),
        "{}",
        drained.stdout
    );
    let st = dfs(dir, &["status", "--json"], 0).await;
    assert!(
        st.stdout.contains("\"state\":\"draining\""),
        "{}",
        st.stdout
    );
    dfs(dir, &["node", "remove", "abcd000000000001"], 0).await;
    let st = dfs(dir, &["status", "--json"], 0).await;
    assert!(st.stdout.contains("\"nodes\":[]"), "{}", st.stdout);
    dfs(dir, &["node", "remove", "abcd000000000001"], 4).await;

    server.stop().await;
}

#[tokio::test]
async fn dfs_without_a_cluster_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let r = dfs(&tmp.path().join("absent"), &["status"], 3).await;
    assert!(r.stderr.contains("no cluster directory"), "{}", r.stderr);
    let r = dfs(tmp.path(), &["fsck"], 3).await;
    assert!(r.stderr.contains("ca.crt is missing"), "{}", r.stderr);
}
