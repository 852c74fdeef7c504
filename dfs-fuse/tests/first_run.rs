//! A machine without fuse3: the mount must say so by name, with the fix.
//!
//! Hiding `fusermount3` from `PATH` is not enough to reproduce such a machine (fuser also
//! looks in `/bin` and `/sbin`), so the mount runs in its own mount namespace with empty
//! tmpfs over `/usr/bin` and `/usr/sbin` (where `/bin` and `/sbin` point on Debian): there
//! is no `fusermount3` anywhere, exactly as before `apt-get install fuse3`.
#![allow(clippy::unwrap_used)]

use std::os::unix::process::CommandExt;
use std::process::Command;

fn hide_usr_bin() -> std::io::Result<()> {
    let tmpfs = c"tmpfs";
    let none = c"none";
    // SAFETY: called in the forked child before exec; every pointer is a valid C string
    // that outlives the call, or null where the call allows it.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Keep our mounts out of the parent's namespace.
        let root = c"/";
        if libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        for dir in [c"/usr/bin", c"/usr/sbin"] {
            if libc::mount(
                tmpfs.as_ptr(),
                dir.as_ptr(),
                tmpfs.as_ptr(),
                0,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[test]
fn without_fuse3_the_mount_names_the_package_to_install() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root for a mount namespace (CI runs as root)");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dfs-fuse"));
    cmd.arg(mnt.path())
        .args(["--coord", "127.0.0.1:1", "--certs", "/nonexistent"])
        .env_remove("FUSERMOUNT_PATH");
    // SAFETY: `hide_usr_bin` only makes system calls, which is what a pre_exec hook may do.
    unsafe {
        cmd.pre_exec(hide_usr_bin);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mounted without fusermount3?");
    assert!(
        stderr.contains("fusermount3 not found: install the fuse3 package (apt-get install fuse3)"),
        "stderr: {stderr}"
    );
    // And the same binary, with fuse3 in place, gets past that check (it fails later,
    // on the missing certificates, which proves the check was passed, not skipped).
    let out = Command::new(env!("CARGO_BIN_EXE_dfs-fuse"))
        .arg(mnt.path())
        .args(["--coord", "127.0.0.1:1", "--certs", "/nonexistent"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !stderr.contains("fusermount3 not found"),
        "stderr: {stderr}"
    );
}
