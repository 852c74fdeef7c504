//! The coordinator's access table, request by request: every request type is sent with a
//! certificate of each role (and with none), and must be refused with `Unauthorized`
//! exactly when that role is not in the table written out below.
//!
//! The expected table is written here again, independently of `src/access.rs`, so a
//! wrong row in either place fails this test.

use super::*;
use dfs_proto::coord_msg::{RenameFlags, SetAttrs, XattrMode};

const C: Role = Role::Client;
const A: Role = Role::Admin;
const N: Role = Role::Node;

/// One sample of every request, with the roles that must be allowed to send it.
fn every_request() -> Vec<(CoordRequest, &'static [Role])> {
    use CoordRequest as Q;
    let id = ShardId::of(b"x");
    let name = || "f".to_string();
    vec![
        (
            Q::Lookup {
                parent: ROOT,
                name: name(),
            },
            &[C, A],
        ),
        (Q::GetAttr { ino: ROOT }, &[C, A]),
        (
            Q::SetAttr {
                ino: ROOT,
                caller: USER,
                set: SetAttrs::default(),
            },
            &[C, A],
        ),
        (
            Q::Create {
                parent: ROOT,
                name: name(),
                kind: FileKind::File,
                perm: 0o644,
                rdev: 0,
                caller: USER,
            },
            &[C, A],
        ),
        (
            Q::Symlink {
                parent: ROOT,
                name: "l".into(),
                target: "t".into(),
                caller: USER,
            },
            &[C, A],
        ),
        (Q::Readlink { ino: ROOT }, &[C, A]),
        (
            Q::Link {
                ino: ROOT,
                new_parent: ROOT,
                new_name: "h".into(),
            },
            &[C, A],
        ),
        (
            Q::Unlink {
                parent: ROOT,
                name: "nope".into(),
                keep: false,
            },
            &[C, A],
        ),
        (
            Q::Rmdir {
                parent: ROOT,
                name: "nope".into(),
            },
            &[C, A],
        ),
        (
            Q::RemoveBatch {
                ops: vec![dfs_proto::coord_msg::Removal {
                    parent: ROOT,
                    name: "nope".into(),
                    dir: false,
                }],
            },
            &[C, A],
        ),
        (
            Q::Rename {
                parent: ROOT,
                name: "nope".into(),
                new_parent: ROOT,
                new_name: "nope2".into(),
                flags: RenameFlags::default(),
            },
            &[C, A],
        ),
        (
            Q::ReadDir {
                ino: ROOT,
                after: None,
                limit: 10,
            },
            &[C, A],
        ),
        (Q::Release { ino: ROOT }, &[C, A]),
        (
            Q::SetXattr {
                ino: ROOT,
                name: "user.a".into(),
                value: b"v".to_vec(),
                mode: XattrMode::Any,
            },
            &[C, A],
        ),
        (
            Q::GetXattr {
                ino: ROOT,
                name: "user.a".into(),
            },
            &[C, A],
        ),
        (Q::ListXattr { ino: ROOT }, &[C, A]),
        (
            Q::RemoveXattr {
                ino: ROOT,
                name: "user.a".into(),
            },
            &[C, A],
        ),
        (Q::StatFs, &[C, A]),
        (
            Q::GetLayout {
                ino: ROOT,
                from: 0,
                limit: 1,
            },
            &[C, A],
        ),
        (
            Q::Place {
                shards: vec![(id, 1)],
            },
            &[C, A],
        ),
        (
            Q::Commit {
                ino: ROOT,
                size: 0,
                mtime: 0,
                shards: vec![],
                caller: USER,
                set: Default::default(),
            },
            &[C, A],
        ),
        (
            Q::Touch {
                shards: vec![id],
                open: vec![ROOT],
            },
            &[C, A],
        ),
        (
            Q::Register {
                node: NodeId(7),
                addr: "127.0.0.1:7007".into(),
                stats: stats(1 << 30),
            },
            &[N],
        ),
        (
            Q::Inventory {
                node: NodeId(7),
                shards: vec![],
                first: true,
                last: true,
            },
            &[N],
        ),
        (
            Q::Heartbeat {
                node: NodeId(7),
                stats: stats(1 << 30),
            },
            &[N],
        ),
        (
            Q::ReportCorrupt {
                node: NodeId(7),
                id,
            },
            &[N],
        ),
        (Q::Status, &[A]),
        (Q::Fsck, &[A]),
    ]
}

#[tokio::test]
async fn every_request_type_is_accepted_only_from_its_roles() {
    let t = T::new();
    let mut checked = 0;
    for (req, allowed) in every_request() {
        // The empty role list stands for a certificate from the cluster CA that carries
        // no role name at all.
        for roles in [vec![], vec![Role::Coord], vec![N], vec![C], vec![A]] {
            let peer = Peer {
                addr: "127.0.0.1:5".parse().unwrap(),
                roles: roles.clone(),
            };
            let r = t.c.handle(&peer, req.clone()).await;
            let refused = matches!(&r, Err(e) if e.code == ErrorCode::Unauthorized);
            let should_allow = roles.iter().any(|r| allowed.contains(r));
            assert_eq!(
                refused, !should_allow,
                "{req:?} from {roles:?}: got {r:?}, allowed roles {allowed:?}"
            );
            if refused {
                let msg = r.unwrap_err().message;
                assert!(msg.contains("may not send"), "{msg}");
            }
            checked += 1;
        }
    }
    // 28 request types × 5 kinds of peer.
    assert_eq!(checked, 28 * 5);
}

#[tokio::test]
async fn a_client_cannot_register_or_report_for_nodes() {
    let t = T::new();
    let e = t
        .call(CoordRequest::Register {
            node: NodeId(1),
            addr: "10.0.0.66:7001".into(),
            stats: stats(1 << 40),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(
        e.message.contains("register") && e.message.contains("dfs-node"),
        "{e}"
    );
    // Nothing was registered: a placement still finds no node.
    let p = t.place(vec![(ShardId::of(b"a"), 1)]).await.unwrap_err();
    assert_ne!(p.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn a_node_cannot_change_the_namespace() {
    let t = T::new();
    let e = t
        .node_call(CoordRequest::Create {
            parent: ROOT,
            name: "planted".into(),
            kind: FileKind::File,
            perm: 0o644,
            rdev: 0,
            caller: USER,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unauthorized);
    assert!(t.lookup(ROOT, "planted").await.is_err());
}
