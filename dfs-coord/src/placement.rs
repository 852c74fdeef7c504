//! Choosing nodes for new shards.
//!
//! Each shard needs `replicas` copies on distinct live nodes. Copies that already exist
//! (identical content is stored once, whatever file it belongs to) count first; the rest
//! go to Up nodes with room, chosen by *smooth weighted round-robin* over their free
//! space: every pick, each eligible node's cursor grows by its weight (free bytes), the
//! node with the largest cursor wins and gives back the sum of all weights. Over many
//! picks each node is chosen in proportion to its free space, consecutive picks are spread
//! out rather than bunched, and the choice is deterministic, so tests can check it.
//!
//! Free space comes from heartbeats, which lag behind writes. Bytes placed since the last
//! heartbeat are *reserved* on the chosen node so that a burst of writes does not pile
//! onto the node that looked emptiest a second ago.

use crate::layout::{live_holders, UpNodes};
use crate::registry::Registry;
use dfs_proto::coord_msg::{NodeAddr, NodeState, Placement};
use dfs_proto::{NodeId, ShardId, WireError, WireResult};
use std::time::Instant;

/// Picks up to `count` distinct Up nodes, not in `exclude`, each with at least `size`
/// bytes available, reserving `size` on each. May return fewer if not enough qualify.
///
/// One round of smooth weighted round-robin choosing `k` nodes at once: every eligible
/// node's cursor grows by `k * weight`, the `k` largest cursors win and each gives back
/// the total weight. Picking them one after the other instead (excluding the first from
/// the second pick) skews the shares: with three equal nodes and two copies, one node
/// ends up with half the load of the others.
pub(crate) fn choose(
    reg: &mut Registry,
    exclude: &[NodeId],
    count: usize,
    size: u64,
    now: Instant,
) -> Vec<NodeId> {
    let eligible: Vec<(NodeId, i128)> = reg
        .nodes
        .iter()
        .filter(|(id, e)| {
            let avail = e.available(now);
            // A node reporting no free space at all is full, even for an empty shard. A
            // draining node is being emptied: nothing new goes there.
            e.state == NodeState::Up
                && !e.draining
                && !exclude.contains(id)
                && avail >= size
                && avail > 0
        })
        .map(|(id, e)| (*id, i128::from(e.available(now))))
        .collect();
    let k = count.min(eligible.len());
    if k == 0 {
        return Vec::new();
    }
    let total: i128 = eligible.iter().map(|(_, w)| w).sum();
    let mut ranked: Vec<(NodeId, i128)> = Vec::with_capacity(eligible.len());
    for (id, w) in &eligible {
        if let Some(e) = reg.nodes.get_mut(id) {
            e.cursor += w * k as i128;
            ranked.push((*id, e.cursor));
        }
    }
    // Largest cursor first; ties go to the lowest id, so the choice is deterministic.
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let chosen: Vec<NodeId> = ranked.iter().take(k).map(|(id, _)| *id).collect();
    for id in &chosen {
        if let Some(e) = reg.nodes.get_mut(id) {
            e.cursor -= total;
            e.reserve(size, now);
        }
    }
    // A node that must be picked every round anyway (e.g. two nodes, two copies) would
    // otherwise drift without bound and then hog picks once a new node joins.
    for (id, _) in &eligible {
        if let Some(e) = reg.nodes.get_mut(id) {
            e.cursor = e.cursor.clamp(-total, total);
        }
    }
    chosen
}

/// Plans where each shard goes. `locations[i]` are the recorded locations of
/// `shards[i]` (empty if the shard is new). `avoid[i]` are nodes that must not receive
/// `shards[i]` (garbage collection is deleting it there right now: a `Put` of a shard a
/// node already has is a no-op, so the Delete arriving after it would win). All-or-nothing:
/// if one shard cannot get `min_copies`, the reservations made for the others are
/// released.
pub(crate) fn place(
    reg: &mut Registry,
    shards: &[(ShardId, u32)],
    locations: &[Vec<u64>],
    avoid: &[Vec<NodeId>],
    replicas: u32,
    min_copies: u32,
    now: Instant,
) -> WireResult<Vec<Placement>> {
    let up: UpNodes = reg.up();
    let counted: UpNodes = reg.counted();
    let mut out = Vec::with_capacity(shards.len());
    let mut reserved: Vec<(NodeId, u64)> = Vec::new();
    for (i, (id, size)) in shards.iter().enumerate() {
        let holders = live_holders(locations.get(i).map_or(&[][..], |l| &l[..]), &up);
        // A copy on a draining node can be read but does not count: it is about to go.
        let kept = holders
            .iter()
            .filter(|h| counted.contains_key(&h.id))
            .count();
        let need = (replicas as usize).saturating_sub(kept);
        let mut exclude: Vec<NodeId> = holders.iter().map(|h| h.id).collect();
        exclude.extend(avoid.get(i).into_iter().flatten().copied());
        let picked = choose(reg, &exclude, need, u64::from(*size), now);
        reserved.extend(picked.iter().map(|n| (*n, u64::from(*size))));
        if holders.len() + picked.len() < min_copies as usize {
            for (n, bytes) in &reserved {
                if let Some(e) = reg.nodes.get_mut(n) {
                    e.unreserve(*bytes);
                }
            }
            let have = holders.len() + picked.len();
            return Err(if up.len() < min_copies as usize {
                WireError::unavailable(format!(
                    "only {} of {} nodes are up; {min_copies} copies needed",
                    up.len(),
                    reg.nodes.len()
                ))
            } else {
                WireError::no_space(format!(
                    "no room for shard {id} ({size} bytes): {have} of {min_copies} copies \
                     placed, the other up nodes are full"
                ))
            });
        }
        let targets = picked
            .iter()
            .filter_map(|n| {
                up.get(n).map(|addr| NodeAddr {
                    id: *n,
                    addr: addr.clone(),
                })
            })
            .collect();
        out.push(Placement {
            id: *id,
            holders,
            targets,
            min_copies,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfs_proto::node_msg::NodeStats;
    use dfs_proto::ErrorCode;
    use std::collections::BTreeMap;

    fn reg(frees: &[u64]) -> Registry {
        let mut r = Registry::default();
        let now = Instant::now();
        for (i, f) in frees.iter().enumerate() {
            r.register(
                NodeId(i as u64 + 1),
                &format!("n{i}:1"),
                NodeStats {
                    capacity: *f,
                    used: 0,
                    free: *f,
                    shards: 0,
                },
                now,
            );
        }
        r
    }

    fn counts(r: &mut Registry, picks: usize, per: usize) -> BTreeMap<u64, usize> {
        let mut c = BTreeMap::new();
        let now = Instant::now();
        for _ in 0..picks {
            for n in choose(r, &[], per, 1, now) {
                *c.entry(n.0).or_default() += 1;
            }
        }
        c
    }

    #[test]
    fn equal_nodes_share_evenly() {
        let mut r = reg(&[1 << 40, 1 << 40, 1 << 40]);
        let c = counts(&mut r, 300, 2);
        for n in 1..=3 {
            assert!((190..=210).contains(&c[&n]), "{c:?}");
        }
    }

    #[test]
    fn bigger_nodes_get_more() {
        let mut r = reg(&[3 << 30, 1 << 30]);
        let c = counts(&mut r, 400, 1);
        assert!((290..=310).contains(&c[&1]), "{c:?}");
    }

    #[test]
    fn full_and_excluded_nodes_are_skipped() {
        let mut r = reg(&[100, 0, 1 << 30]);
        let now = Instant::now();
        // Node 1 has only 100 bytes; node 2 is full.
        assert_eq!(choose(&mut r, &[], 3, 1000, now), vec![NodeId(3)]);
        assert_eq!(choose(&mut r, &[NodeId(3)], 2, 50, now), vec![NodeId(1)]);
        // Node 1's 50 reserved bytes count: 60 more do not fit.
        assert!(choose(&mut r, &[NodeId(3)], 1, 60, now).is_empty());
    }

    #[test]
    fn not_enough_copies_is_an_error_and_releases_reservations() {
        let mut r = reg(&[1 << 30, 10]);
        let now = Instant::now();
        let a = ShardId::of(b"a");
        let b = ShardId::of(b"b");
        let e = place(
            &mut r,
            &[(a, 5), (b, 100)],
            &[vec![], vec![]],
            &[],
            2,
            2,
            now,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::NoSpace);
        assert_eq!(r.nodes[&NodeId(2)].available(now), 10);
        let e = place(&mut r, &[(a, 5)], &[vec![]], &[], 3, 3, now).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
    }
}
