#![allow(clippy::unwrap_used)]
use super::*;
use clap::{CommandFactory, Parser};
use std::net::SocketAddr;
use std::time::Duration;

fn parse_secs(s: &str) -> Result<Duration, String> {
    let n: u64 = s
        .strip_suffix('s')
        .unwrap_or(s)
        .parse()
        .map_err(|e| format!("{e} (try 5s)"))?;
    Ok(Duration::from_secs(n))
}

/// A daemon's flags in miniature: a required one, defaults, a custom parser, a switch.
#[derive(Debug, Parser)]
struct Flags {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    #[arg(long, default_value = "5s", value_parser = parse_secs)]
    node_timeout: Duration,
    #[arg(long)]
    verbose: bool,
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(toml: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("d.toml"), toml).unwrap();
        Setup { dir }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("d.toml")
    }
    /// Parses `args` with the file as the default configuration.
    fn parse(&self, args: &[&str]) -> Result<Flags> {
        let argv: Vec<OsString> = std::iter::once("daemon")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let merged = merge_config(&Flags::command(), argv, 1, &self.path())?;
        Ok(Flags::try_parse_from(merged)?)
    }
    fn error(&self, args: &[&str]) -> String {
        format!("{:#}", self.parse(args).unwrap_err())
    }
}

#[test]
fn file_fills_in_and_command_line_wins() {
    let s = Setup::new("data = \"/var/d\"\nlisten = \"0.0.0.0:9\"\nreplicas = 3\nnode_timeout = \"7s\"\nverbose = true\n");
    let f = s.parse(&[]).unwrap();
    assert_eq!(f.data, PathBuf::from("/var/d"));
    assert_eq!(f.listen, "0.0.0.0:9".parse().unwrap());
    assert_eq!(
        (f.replicas, f.node_timeout, f.verbose),
        (3, Duration::from_secs(7), true)
    );
    // Both flag spellings override the file; what the flags leave alone still comes
    // from it.
    let f = s.parse(&["--replicas", "1", "--node-timeout=9s"]).unwrap();
    assert_eq!((f.replicas, f.node_timeout), (1, Duration::from_secs(9)));
    assert_eq!(f.listen, "0.0.0.0:9".parse().unwrap());
}

#[test]
fn defaults_stay_for_keys_the_file_leaves_out() {
    let s = Setup::new("data = \"/d\"\n");
    let f = s.parse(&[]).unwrap();
    assert_eq!(
        (f.replicas, f.node_timeout, f.verbose),
        (2, Duration::from_secs(5), false)
    );
    assert_eq!(f.listen, "127.0.0.1:7000".parse().unwrap());
}

#[test]
fn default_path_is_optional_but_an_explicit_one_is_not() {
    let s = Setup::new("");
    std::fs::remove_file(s.path()).unwrap();
    assert_eq!(s.parse(&["--data", "/x"]).unwrap().replicas, 2);
    let missing = s.dir.path().join("nope.toml");
    let e = s.error(&["--data", "/x", "--config", missing.to_str().unwrap()]);
    assert!(
        e.contains("read configuration file") && e.contains("nope.toml"),
        "{e}"
    );
}

#[test]
fn explicit_config_replaces_the_default_path() {
    let s = Setup::new("replicas = 3\n");
    let other = s.dir.path().join("other.toml");
    std::fs::write(&other, "replicas = 4\n").unwrap();
    let f = s
        .parse(&["--data", "/x", "--config", other.to_str().unwrap()])
        .unwrap();
    assert_eq!(f.replicas, 4);
    assert_eq!(f.config, Some(other));
}

#[test]
fn mistakes_name_the_file_the_key_and_the_problem() {
    let check = |toml: &str, wanted: &[&str]| {
        let s = Setup::new(toml);
        let e = s.error(&["--data", "/x"]);
        assert!(e.starts_with(s.path().to_str().unwrap()), "{e}");
        for w in wanted {
            assert!(e.contains(w), "{e:?} lacks {w:?}");
        }
    };
    check(
        "replica = 3\n",
        &[
            "unknown key `replica`",
            "known keys: data, listen, replicas",
        ],
    );
    check(
        "node-timeout = \"5s\"\n",
        &["keys use underscores: `node_timeout`"],
    );
    check("config = \"/x\"\n", &["unknown key `config`"]);
    check(
        "listen = \"nowhere\"\n",
        &["key `listen`", "bad value \"nowhere\"", "address"],
    );
    check(
        "node_timeout = \"soon\"\n",
        &["key `node_timeout`", "bad value \"soon\"", "try 5s"],
    );
    check("replicas = -1\n", &["key `replicas`", "bad value \"-1\""]);
    check(
        "replicas = [1, 2]\n",
        &[
            "key `replicas`",
            "expected a string or a number, found array",
        ],
    );
    check(
        "verbose = \"yes\"\n",
        &["key `verbose`", "expected true or false"],
    );
    check("[server]\nlisten = \"x\"\n", &["unknown key `server`"]);
    check("replicas = \n", &["line 1"]);
}

#[test]
fn a_required_flag_in_neither_is_still_required() {
    let s = Setup::new("replicas = 3\n");
    let e = s.error(&[]);
    assert!(e.contains("--data"), "{e}");
}

#[test]
fn help_works_with_a_broken_file() {
    let s = Setup::new("this is not toml\n");
    let argv: Vec<OsString> = ["daemon", "--help"].iter().map(OsString::from).collect();
    let merged = merge_config(&Flags::command(), argv.clone(), 1, &s.path()).unwrap();
    assert_eq!(merged, argv);
    assert!(s.parse(&["--data", "/x"]).is_err());
}
