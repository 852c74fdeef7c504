//! The real `dfs-coord` reads `serve` settings from a TOML file and refuses a bad one
//! with one line naming the file, the key and the problem.

// A failed unwrap is how a test reports an unexpected error.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn serve_with(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coord.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dfs-coord"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(path.to_str().unwrap(), "FILE");
    (out.status.code(), stderr.trim().to_string())
}

#[test]
fn bad_config_files_are_refused_with_file_key_and_problem() {
    let (code, err) =
        serve_with("data = \"/tmp/x\"\ncerts = \"/tmp/c\"\nrepair_grace = \"soon\"\n");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        "dfs-coord: FILE: key `repair_grace`: bad value \"soon\": \"soon\" is not a duration (try 30s, 10m or 1h)"
    );
    let (code, err) = serve_with("replica = 2\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("dfs-coord: FILE: unknown key `replica` (known keys: data, certs,"),
        "{err}"
    );
}

#[test]
fn help_lists_config_and_metrics_flags_with_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_dfs-coord"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for want in [
        "--config <PATH>",
        "[default: /etc/dfs/coord.toml, if it exists]",
        "--metrics-listen <ADDR>",
        "--view-listen <ADDR>",
        "--view-token-file <PATH>",
        "[default: off]",
        "[default: 5m]",
    ] {
        assert!(help.contains(want), "{want:?} not in\n{help}");
    }
}

#[test]
fn a_public_cluster_view_without_a_token_is_refused_from_the_config_file() {
    let (code, err) = serve_with(
        "data = \"/nonexistent/data\"\ncerts = \"/nonexistent/certs\"\nview_listen = \"0.0.0.0:7080\"\n",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "refusing to serve the cluster view on 0.0.0.0:7080: it is not a loopback address"
        ),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let (code, err) = serve_with(&format!(
        "data = \"/nonexistent/data\"\ncerts = \"/nonexistent/certs\"\nview_listen = \"0.0.0.0:7080\"\nview_token_file = {:?}\n",
        token.display().to_string()
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is empty"), "{err}");
}
