//! Command-line flags of the `dfs-node` binary, and the byte-size syntax (`10G`) they accept.

use crate::NodeConfig;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `--reserve` default: 256 MiB.
pub const DEFAULT_RESERVE: u64 = 256 << 20;

/// dfs storage node: keeps content-addressed shards on local disk and serves them over QUIC.
#[derive(Debug, Parser)]
#[command(name = "dfs-node", version)]
pub struct Args {
    /// Data directory for shards and the node's identity (created if missing).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Coordinator address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub coord: String,
    /// Directory holding ca.crt and this node's certificate and key.
    #[arg(long, value_name = "DIR")]
    pub certs: PathBuf,
    /// Name of this node's certificate in --certs (NAME.crt, NAME.key), e.g. node-1.
    #[arg(long, value_name = "NAME")]
    pub cert_name: String,
    /// Address to listen on for QUIC (UDP); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Address clients should dial, as told to the coordinator [default: the bound address].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Bytes shards may use, e.g. 10G or 512M [default: free disk space minus --reserve].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub capacity: Option<u64>,
    /// Disk space to leave free when no --capacity is given (e.g. 256M).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "268435456")]
    pub reserve: u64,
    /// Write the advertised address to this file once listening (for scripts and tests).
    #[arg(long, value_name = "PATH")]
    pub addr_file: Option<PathBuf>,
}

impl Args {
    pub fn into_config(self) -> NodeConfig {
        NodeConfig {
            data: self.data,
            listen: self.listen,
            advertise: self.advertise,
            coord: self.coord,
            certs: self.certs,
            cert_name: self.cert_name,
            capacity: self.capacity,
            reserve: self.reserve,
            addr_file: self.addr_file,
        }
    }
}

/// Parses a byte count: plain digits, or digits followed by K, M, G or T (powers of 1024,
/// either case, optionally followed by `B` or `iB`): `4096`, `512M`, `10G`, `1TiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (try 4096, 512M or 10G)"));
    }
    let n: u64 = num.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let unit = unit.to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("10g"), Ok(10 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("2KB"), Ok(2048));
        assert_eq!(parse_size("7B"), Ok(7));
        for bad in [
            "",
            "G",
            "10X",
            "1.5G",
            "-1",
            "10 G",
            "ib",
            "10iB",
            "99999999999T",
            "2KBB",
            "5é",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_parse_with_defaults() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "dfs-node",
            "--data",
            "/d",
            "--coord",
            "c:1",
            "--certs",
            "/c",
            "--cert-name",
            "node-1",
        ])
        .unwrap();
        let c = a.into_config();
        assert_eq!(c.reserve, 256 << 20);
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!((c.capacity, c.advertise, c.addr_file), (None, None, None));
        // The flags' defaults are the ones NodeConfig::new uses.
        assert_eq!(c.reserve, DEFAULT_RESERVE);
        let n = NodeConfig::new("/d", "c:1", "/c", "node-1");
        assert_eq!((n.reserve, n.listen), (c.reserve, c.listen));
        let a = Args::try_parse_from([
            "dfs-node",
            "--data",
            "/d",
            "--coord",
            "c:1",
            "--certs",
            "/c",
            "--cert-name",
            "n",
            "--capacity",
            "10G",
            "--reserve",
            "1M",
        ])
        .unwrap();
        assert_eq!((a.capacity, a.reserve), (Some(10 << 30), 1 << 20));
        assert!(Args::try_parse_from(["dfs-node", "--data", "/d"]).is_err());
    }
}
