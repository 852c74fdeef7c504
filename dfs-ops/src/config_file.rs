//! TOML configuration files for the daemons, merged under their command-line flags.
//!
//! Every long flag of a daemon is also a key of its file, spelt with underscores
//! (`--node-timeout 5s` is `node_timeout = "5s"`); numbers may be written bare
//! (`replicas = 2`). A flag given on the command line wins over the file, and the file
//! wins over the flag's default. The file is read from `--config PATH` or, when that flag
//! is absent, from a default path (`/etc/dfs/coord.toml`...) if such a file exists.
//!
//! How: rather than keep a second description of every setting in sync with the flags,
//! each key of the file is turned into the flag it names (`--node-timeout=5s`) and put in
//! front of the real command line, unless that flag is on the command line already. clap
//! then parses the result as usual, so values from the file go through exactly the same
//! parsers, defaults and `--help` as flags do. Each value is also checked on its own first,
//! so that a mistake is reported as "FILE: key `KEY`: PROBLEM" and not as a bad flag the
//! user never typed.

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, Command};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The flag naming the file.
const CONFIG_FLAG: &str = "config";

/// Parses this process's command line into `P`, with the settings of the configuration
/// file (`--config`, else `default_path` if it exists) merged in before the flags, so
/// that a flag given on the command line wins. For programs without subcommands: the
/// node and the mount.
pub fn parse_with_config<P: clap::Parser>(default_path: &Path) -> Result<P> {
    let argv = merge_config(
        &P::command(),
        std::env::args_os().collect(),
        1,
        default_path,
    )?;
    Ok(P::parse_from(argv))
}

/// Returns `argv` with the settings of the configuration file inserted at index `at` (just
/// after the program name, or after the subcommand of a program that has them). `cmd`
/// describes the flags the file may set; `default_path` is read if `--config` is not
/// given and the file exists.
pub fn merge_config(
    cmd: &Command,
    mut argv: Vec<OsString>,
    at: usize,
    default_path: &Path,
) -> Result<Vec<OsString>> {
    let given = argv.get(at..).unwrap_or_default();
    // `--help` and `--version` must work even when the file is broken: that is when
    // someone reads the help.
    let asks_help = given
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| matches!(a.to_str(), Some("-h" | "--help" | "-V" | "--version")));
    if asks_help {
        return Ok(argv);
    }
    let path = match flag_value(given, CONFIG_FLAG) {
        Some(p) => PathBuf::from(p),
        None if default_path.exists() => default_path.to_path_buf(),
        None => return Ok(argv),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("read configuration file {}", path.display()))?;
    let from_file = file_flags(cmd, &text, given).with_context(|| path.display().to_string())?;
    argv.splice(at..at, from_file);
    Ok(argv)
}

/// The flags the file `text` sets and `given` does not.
fn file_flags(cmd: &Command, text: &str, given: &[OsString]) -> Result<Vec<OsString>> {
    // toml's error already says where (line, column) and what.
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let arg = find_arg(cmd, key)?;
        let long = arg.get_long().unwrap_or(key);
        if flag_value(given, long).is_some() || flag_present(given, long) {
            continue; // the command line wins
        }
        let takes_value = !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    flags.push(format!("--{long}").into());
                }
                continue;
            }
            other => bail!(
                "key `{key}`: expected {}, found {}",
                if takes_value {
                    "a string or a number"
                } else {
                    "true or false"
                },
                other.type_str()
            ),
        };
        if !takes_value {
            bail!(
                "key `{key}`: expected true or false, found a {}",
                value.type_str()
            );
        }
        check_value(cmd, arg, &text).with_context(|| format!("key `{key}`"))?;
        flags.push(format!("--{long}={text}").into());
    }
    Ok(flags)
}

/// The flag a key names: `node_timeout` names `--node-timeout`.
fn find_arg<'a>(cmd: &'a Command, key: &str) -> Result<&'a Arg> {
    let settable = |a: &&Arg| {
        a.get_long()
            .is_some_and(|l| !matches!(l, "help" | "version" | CONFIG_FLAG))
    };
    let long = key.replace('_', "-");
    if !key.contains('-') {
        if let Some(a) = cmd
            .get_arguments()
            .filter(settable)
            .find(|a| a.get_long() == Some(&long))
        {
            return Ok(a);
        }
    }
    let known: Vec<String> = cmd
        .get_arguments()
        .filter(settable)
        .filter_map(|a| a.get_long())
        .map(|l| l.replace('-', "_"))
        .collect();
    let hint = if key.contains('-') && known.contains(&key.replace('-', "_")) {
        format!(" (keys use underscores: `{}`)", key.replace('-', "_"))
    } else {
        format!(" (known keys: {})", known.join(", "))
    };
    bail!("unknown key `{key}`{hint}")
}

/// Runs `text` through the flag's own parser, to report a bad value against its key: the
/// whole command parses just this one flag, and any complaint but "a required flag is
/// missing" is about the value.
fn check_value(cmd: &Command, arg: &Arg, text: &str) -> Result<()> {
    let long = arg.get_long().unwrap_or_default();
    let argv = [cmd.get_name().to_string(), format!("--{long}={text}")];
    match cmd.clone().try_get_matches_from(argv) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => Ok(()),
        Err(e) => {
            // The parser's own reason if it has one; else clap's first line, without the
            // "error: " prefix.
            let why = match std::error::Error::source(&e) {
                Some(s) => s.to_string(),
                None => e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_string(),
            };
            bail!("bad value {text:?}: {why}")
        }
    }
}

/// The value of `--long VALUE` or `--long=VALUE` in `args` (the last one, as clap takes).
fn flag_value<'a>(args: &'a [OsString], long: &str) -> Option<&'a OsStr> {
    let flag = format!("--{long}");
    let prefix = format!("--{long}=");
    let mut found = None;
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let Some(s) = a.to_str() else { continue };
        if s == flag {
            if let Some(v) = it.peek() {
                found = Some(v.as_os_str());
            }
        } else if let Some(v) = s.strip_prefix(&prefix) {
            found = Some(OsStr::new(v));
        }
    }
    found
}

/// Whether a value-less flag `--long` is in `args`.
fn flag_present(args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    args.iter().take_while(|a| *a != "--").any(|a| *a == *flag)
}

#[cfg(test)]
mod tests;
