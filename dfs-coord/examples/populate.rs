//! populate: fills a stopped coordinator's namespace with many empty files, fast, for the
//! scaling benchmark (tests/bench/scaling.sh). Not part of the product.
//!
//!   cargo run --release -p dfs-coord --example populate -- DATA_DIR TOP FILES [PER_DIR]
//!
//! Creates DATA_DIR/meta.redb's directory TOP (under the root) holding directories
//! d000000, d000001, ... of PER_DIR (default 1000) empty files each, FILES files in all;
//! running it again with another TOP adds more. Why not create them through a mount: at
//! a few hundred creates per second (each an fsynced transaction) a million files would
//! take an hour. Here the same request handler the coordinator serves (`Coordinator::
//! handle`, so the records are exactly what a mount's creates would leave) runs in this
//! process with `--lazy-namespace-sync` semantics: transactions are fsynced in batches,
//! and a final `Sync` makes everything durable before it exits. The coordinator must be
//! stopped (redb refuses a second opener).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use dfs_coord::{CoordSettings, Coordinator};
use dfs_proto::access::Role;
use dfs_proto::coord_msg::{Caller, CoordRequest, CoordResponse, FileKind};
use dfs_proto::rpc::Peer;
use dfs_proto::{Ino, ROOT_INO as ROOT};

/// Requests in flight at once: enough to keep the blocking pool busy while one
/// transaction commits.
const IN_FLIGHT: usize = 64;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        bail!("usage: populate DATA_DIR TOP FILES [PER_DIR]");
    }
    let data = PathBuf::from(&args[0]);
    let top = args[1].clone();
    let files: u64 = args[2].parse().context("FILES")?;
    let per_dir: u64 = match args.get(3) {
        Some(s) => s.parse().context("PER_DIR")?,
        None => 1000,
    };
    if per_dir == 0 {
        bail!("PER_DIR must be at least 1");
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(run(data, top, files, per_dir))
}

async fn run(data: PathBuf, top: String, files: u64, per_dir: u64) -> Result<()> {
    let settings = CoordSettings {
        durable_close: false,
        ..CoordSettings::default()
    };
    let c = Coordinator::open(&data.join("meta.redb"), settings)
        .with_context(|| format!("open {} (is the coordinator stopped?)", data.display()))?;
    let peer = Arc::new(Peer {
        addr: "127.0.0.1:1".parse()?,
        roles: vec![Role::Client],
    });
    let caller = Caller { uid: 0, gid: 0 };
    let t0 = Instant::now();
    let top_ino = create(&c, &peer, ROOT, top, FileKind::Dir, caller).await?;
    let mut done = 0u64;
    let mut dir_no = 0u64;
    while done < files {
        let dir = create(
            &c,
            &peer,
            top_ino,
            format!("d{dir_no:06}"),
            FileKind::Dir,
            caller,
        )
        .await?;
        let n = per_dir.min(files - done);
        let mut i = 0u64;
        while i < n {
            let batch = (n - i).min(IN_FLIGHT as u64);
            let mut tasks = tokio::task::JoinSet::new();
            for k in i..i + batch {
                let (c, peer) = (c.clone(), peer.clone());
                tasks.spawn(async move {
                    create(&c, &peer, dir, format!("f{k:07}"), FileKind::File, caller).await
                });
            }
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            i += batch;
        }
        done += n;
        dir_no += 1;
        if dir_no.is_multiple_of(100) {
            eprintln!(
                "populate: {done} files, {:.0}/s",
                done as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    c.handle(&peer, CoordRequest::Sync).await?;
    let s = t0.elapsed().as_secs_f64();
    println!(
        "populate: {done} files in {dir_no} directories in {s:.1} s ({:.0}/s)",
        done as f64 / s
    );
    Ok(())
}

async fn create(
    c: &Coordinator,
    peer: &Peer,
    parent: Ino,
    name: String,
    kind: FileKind,
    caller: Caller,
) -> Result<Ino> {
    let perm = if kind == FileKind::Dir { 0o755 } else { 0o644 };
    let req = CoordRequest::Create {
        parent,
        name: name.clone(),
        kind,
        perm,
        rdev: 0,
        caller,
    };
    match c.handle(peer, req).await {
        Ok(CoordResponse::Attr(a)) => Ok(a.ino),
        Ok(other) => bail!("create {name}: unexpected reply {other:?}"),
        Err(e) => bail!("create {name}: {e}"),
    }
}
