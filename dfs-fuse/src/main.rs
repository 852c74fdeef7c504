//! `dfs-fuse`: mount a dfs cluster at a directory. Installed (or linked) as
//! `/sbin/mount.fuse.dfs`, the same binary is the helper `mount -t fuse.dfs` runs (see
//! `mount_helper.rs`).

use dfs_fuse::cli::Args;
use dfs_fuse::mount_helper;
use std::path::Path;

fn main() {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    if Path::new(&argv0).file_name() == Some(mount_helper::HELPER_NAME.as_ref()) {
        // mount(8) reads only our exit status and stderr: no logging set-up needed here.
        if let Err(e) = mount_helper::run(argv.collect()) {
            eprintln!("{}: {e:#}", mount_helper::HELPER_NAME);
            // mount(8)'s "mount failure" status.
            std::process::exit(32);
        }
        return;
    }
    dfs_ops::daemon::init_logging();
    if let Err(e) = try_main() {
        eprintln!("dfs-fuse: {e:#}");
        std::process::exit(1);
    }
}

fn try_main() -> anyhow::Result<()> {
    let a = Args::from_env()?;
    // As root, share the mount with every user and let the kernel enforce permissions.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    dfs_fuse::run(a.into_config(root), dfs_ops::daemon::shutdown_signal)
}
