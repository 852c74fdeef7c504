//! How `dfs` finds its cluster: the directory (`--cluster`, `$DFS_CLUSTER`, `/etc/dfs`),
//! the admin certificate in it, and the coordinator's address (`coord/addr`, then
//! `cluster.conf`'s `PORT=`, then `coord-addr`); and the exit codes of failures.

use dfs_coord::admin::cluster_dir::{choose_dir, ClusterDir};
use dfs_coord::admin::conn::{exit_code, EXIT_COULD_NOT_RUN, EXIT_REFUSED};
use dfs_proto::WireError;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;

fn err(dir: &Path) -> String {
    format!("{:#}", ClusterDir::open(dir).unwrap_err())
}

#[test]
fn the_flag_wins_over_the_environment_which_wins_over_the_default() {
    let (flag, env) = (Path::new("/a"), OsStr::new("/b"));
    assert_eq!(choose_dir(Some(flag), Some(env)), Path::new("/a"));
    assert_eq!(choose_dir(None, Some(env)), Path::new("/b"));
    assert_eq!(
        choose_dir(None, Some(OsStr::new(""))),
        Path::new("/etc/dfs")
    );
    assert_eq!(choose_dir(None, None), Path::new("/etc/dfs"));
}

#[test]
fn address_comes_from_addr_file_then_cluster_conf_then_coord_addr() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let missing = err(&dir.join("nope"));
    assert!(missing.contains("no cluster directory"), "{missing}");
    assert!(missing.contains("DFS_CLUSTER"), "{missing}");

    // Certificates first: without them nothing else matters.
    let e = err(dir);
    assert!(e.contains("ca.crt is missing"), "{e}");
    fs::create_dir_all(dir.join("certs")).unwrap();
    fs::write(dir.join("certs/ca.crt"), "x").unwrap();
    fs::write(dir.join("certs/admin.crt"), "x").unwrap();
    let e = err(dir);
    assert!(e.contains("admin.key is missing"), "{e}");
    assert!(e.contains("dfs-coord issue"), "{e}");
    fs::write(dir.join("certs/admin.key"), "x").unwrap();

    let e = err(dir);
    assert!(e.contains("cannot tell where the coordinator"), "{e}");

    fs::write(dir.join("coord-addr"), "10.0.0.9:7000\n").unwrap();
    let c = ClusterDir::open(dir).unwrap();
    assert_eq!(c.coord, "10.0.0.9:7000");
    assert_eq!(c.certs, dir.join("certs"));

    // A cluster.conf without PORT= says nothing about the address.
    fs::write(dir.join("cluster.conf"), "NODES=3\n").unwrap();
    assert_eq!(ClusterDir::open(dir).unwrap().coord, "10.0.0.9:7000");
    fs::write(
        dir.join("cluster.conf"),
        "NODES=3\nREPLICAS=2\nPORT=41234\n",
    )
    .unwrap();
    assert_eq!(ClusterDir::open(dir).unwrap().coord, "127.0.0.1:41234");

    // An empty coord/addr (a coordinator starting) is skipped; a written one wins.
    fs::create_dir_all(dir.join("coord")).unwrap();
    fs::write(dir.join("coord/addr"), "").unwrap();
    assert_eq!(ClusterDir::open(dir).unwrap().coord, "127.0.0.1:41234");
    fs::write(dir.join("coord/addr"), "127.0.0.1:5555\n").unwrap();
    let c = ClusterDir::open(dir).unwrap();
    assert_eq!(c.coord, "127.0.0.1:5555");
    assert_eq!(c.coord_from, dir.join("coord/addr"));
}

#[test]
fn exit_codes_tell_could_not_run_from_refused() {
    let local = anyhow::anyhow!("no cluster directory");
    assert_eq!(exit_code(&local), EXIT_COULD_NOT_RUN);
    let down = anyhow::Error::new(WireError::unavailable("no answer")).context("ask");
    assert_eq!(exit_code(&down), EXIT_COULD_NOT_RUN);
    let refused = anyhow::Error::new(WireError::not_found("no such node")).context("ask");
    assert_eq!(exit_code(&refused), EXIT_REFUSED);
    assert_eq!((EXIT_COULD_NOT_RUN, EXIT_REFUSED), (3, 4));
}
