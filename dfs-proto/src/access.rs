//! Authorization: which certificate roles may send which request.
//!
//! Authentication (is this peer part of the cluster at all?) happens in the TLS handshake
//! (`tls.rs`). Authorization happens here, once per request, before the server does any
//! work: each server keeps a table mapping every request variant to the roles allowed to
//! send it (`dfs-coord/src/access.rs`, `dfs-node/src/access.rs`), and calls [`check`]
//! with the entry for the request in hand. The tables are exhaustive `match`es with no
//! wildcard arm, so adding a request variant does not compile until someone decides who
//! may send it.

use crate::rpc::Peer;
use crate::{ErrorCode, WireError, WireResult};

/// What a certificate's holder is allowed to be: the role written into its subject
/// alternative names (`dfs-coord`, `dfs-node`, `dfs-client`, `dfs-admin`) when `dfs-pki`
/// issues it, read back from the peer's certificate in every handshake (`tls.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Coord,
    Node,
    Client,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Coord, Role::Node, Role::Client, Role::Admin];

    /// The DNS-style name put in the certificate's SANs, and the server name a client
    /// verifies when it dials a server of this role.
    pub fn san(self) -> &'static str {
        match self {
            Role::Coord => "dfs-coord",
            Role::Node => "dfs-node",
            Role::Client => "dfs-client",
            Role::Admin => "dfs-admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.san() == s || r.san().trim_start_matches("dfs-") == s)
    }
}

/// One row of a server's access table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The request's name, for error messages and logs.
    pub request: &'static str,
    /// Roles allowed to send it. A peer needs at least one of them.
    pub roles: &'static [Role],
}

impl Rule {
    pub const fn new(request: &'static str, roles: &'static [Role]) -> Rule {
        Rule { request, roles }
    }

    /// Whether a peer holding `roles` may send this request.
    pub fn allows(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

/// `Ok` if `peer` may send the request `rule` describes, else `Unauthorized` with a
/// message naming the request, the roles the peer has and the roles it would need.
pub fn check(peer: &Peer, rule: Rule) -> WireResult<()> {
    if rule.allows(&peer.roles) {
        return Ok(());
    }
    Err(WireError::new(
        ErrorCode::Unauthorized,
        format!(
            "{} may not send {}: it needs a certificate with role {}, it has {}",
            peer.addr,
            rule.request,
            names(rule.roles),
            if peer.roles.is_empty() {
                "none".to_string()
            } else {
                names(&peer.roles)
            }
        ),
    ))
}

fn names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.san())
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_request_and_roles() {
        let peer = Peer {
            addr: "127.0.0.1:9".parse().expect("address"),
            roles: vec![Role::Client],
        };
        let rule = Rule::new("Delete", &[Role::Coord]);
        let e = check(&peer, rule).expect_err("client may not delete");
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(e.message.contains("Delete"), "{e}");
        assert!(e.message.contains("dfs-coord"), "{e}");
        assert!(e.message.contains("dfs-client"), "{e}");
        assert!(check(&peer, Rule::new("Get", &[Role::Node, Role::Client])).is_ok());
        let nobody = Peer {
            roles: vec![],
            ..peer
        };
        assert!(check(&nobody, Rule::new("Get", &[Role::Client])).is_err());
    }
}
