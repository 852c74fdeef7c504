//! Requests to a storage node. Each request travels on its own QUIC stream and gets exactly
//! one [`NodeResponse`] (or a [`crate::WireError`]).
//!
//! | request            | success response          | distinct errors                      |
//! |--------------------|---------------------------|--------------------------------------|
//! | `Put`              | `Stored`                  | `Corrupt` (hash mismatch), `NoSpace` |
//! | `Get`              | `Data`                    | `NotFound`, `Corrupt`, `Invalid`     |
//! | `Delete`           | `Deleted`                 | `NotFound`                           |
//! | `Status`           | `Status`                  |                                      |
//! | `Replicate`        | `Stored`                  | `Unavailable`, `NoSpace`             |
//! | `Sync`             | `Synced`                  | `Invalid` (too many IDs)             |

use crate::frame::{self, Frame, FrameError, FromFrame, ToFrame};
use crate::ids::{NodeId, ShardId};
use crate::WireResult;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeRequest {
    /// Store `data` as shard `id`. The node hashes the bytes and refuses them with
    /// `Corrupt` if they do not match `id`; it answers once the shard is in place and
    /// readable, durable only after a `Sync` (or the node's own periodic sync, or at once
    /// on a node run with `--durable-close`). Storing a shard it already has is a no-op.
    Put {
        id: ShardId,
        #[serde(with = "crate::frame::bytes_serde")]
        data: Bytes,
    },
    /// Read a whole shard (`range: None`) or `len` bytes at `offset`. The node verifies
    /// every 64 KiB block it reads against the checksum kept for it with the shard; for a
    /// whole shard the caller checks the SHA-256 against `id` itself. A range past the end
    /// is `Invalid`.
    Get {
        id: ShardId,
        range: Option<ByteRange>,
    },
    /// Remove a shard.
    Delete { id: ShardId },
    /// Re-replication: fetch shard `id` from the first of `sources` (node addresses) that
    /// serves bytes matching the ID, and store it like a `Put`. Answers `Stored` once the
    /// copy is durable; `Unavailable` if no source could serve it. Sent by the
    /// coordinator, so repair traffic goes node to node and never through a client.
    Replicate { id: ShardId, sources: Vec<String> },
    /// Capacity, usage and shard count.
    Status,
    /// Make these shards durable (a client's `fsync`, like NFS's COMMIT): when the node
    /// answers `Synced`, every one of them it holds survives a power loss. At most
    /// [`MAX_SYNC_IDS`] per request.
    Sync { ids: Vec<ShardId> },
}

/// Most shard IDs in one `Sync` (32 bytes each: 256 KiB of IDs).
pub const MAX_SYNC_IDS: usize = 8192;

impl NodeRequest {
    /// The request's name, in snake case: the `op` label of the RPC metrics and the name
    /// in "may not send" errors.
    pub fn name(&self) -> &'static str {
        match self {
            NodeRequest::Put { .. } => "put",
            NodeRequest::Get { .. } => "get",
            NodeRequest::Delete { .. } => "delete",
            NodeRequest::Replicate { .. } => "replicate",
            NodeRequest::Status => "status",
            NodeRequest::Sync { .. } => "sync",
        }
    }
}

/// The first byte of a `Put`'s body: its variant index, a varint (postcard numbers enum
/// variants in declaration order). Checked by the tests below against what postcard writes.
const PUT_TAG: u8 = 0;

/// A `Put` as postcard lays it out after the tag, borrowing the shard's bytes from the
/// received frame.
#[derive(Deserialize)]
struct PutRef<'a> {
    id: ShardId,
    #[serde(borrow)]
    data: &'a [u8],
}

impl NodeRequest {
    /// A `Put` of `data` as shard `id`, encoded for sending without copying `data`: the
    /// frame's last piece is `data` itself, so the frames a mount builds for the R nodes
    /// of one shard all share the shard's one buffer.
    pub fn put_frame(id: ShardId, data: Bytes) -> Result<Frame, FrameError> {
        let head = frame::encode(&NodeRequest::Put {
            id,
            data: Bytes::new(),
        })?;
        Frame::with_tail(head, data)
    }
}

impl FromFrame for NodeRequest {
    /// A `Put` keeps its bytes in the buffer they were received into (a `Bytes` slice of
    /// it), instead of postcard copying a megabyte out of the frame; every other request
    /// is decoded as usual. A `Put` must end exactly where its frame ends.
    fn from_frame(payload: Vec<u8>) -> Result<Self, FrameError> {
        let body = frame::body(&payload)?;
        let Some((&PUT_TAG, rest)) = body.split_first() else {
            return frame::decode(&payload);
        };
        let (put, trailing) = postcard::take_from_bytes::<PutRef>(rest)?;
        if !trailing.is_empty() {
            return Err(FrameError::Trailing);
        }
        let (id, len) = (put.id, put.data.len());
        // Where the bytes start in `payload`: the borrowed slice points into it.
        let start = put.data.as_ptr() as usize - payload.as_ptr() as usize;
        let data = Bytes::from(payload).slice(start..start + len);
        Ok(NodeRequest::Put { id, data })
    }
}

impl ToFrame for NodeResponse {
    /// A shard read for a `Get` goes to quinn as it was read from disk, not copied into
    /// the frame first.
    fn answer_frame(answer: WireResult<Self>) -> Result<Frame, FrameError> {
        match answer {
            Ok(NodeResponse::Data(data)) => {
                let head = frame::encode(&WireResult::Ok(NodeResponse::Data(Vec::new())))?;
                Frame::with_tail(head, Bytes::from(data))
            }
            other => Frame::of(&other),
        }
    }
}

/// A byte range inside one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeResponse {
    Stored,
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    Deleted,
    Status(NodeStatus),
    /// The answer to `Sync`: the requested shards this node does not hold (all the others
    /// are durable).
    Synced {
        missing: Vec<ShardId>,
    },
}

/// A node's view of its own disk, as reported to the coordinator and to `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeStats {
    /// Bytes this node may use for shards (configured limit, or free disk minus reserve).
    pub capacity: u64,
    /// Bytes its shard files take.
    pub used: u64,
    /// `capacity - used`, never negative.
    pub free: u64,
    /// Number of shards stored.
    pub shards: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub stats: NodeStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(f: &Frame) -> Vec<u8> {
        f.pieces().iter().flat_map(|b| b.iter().copied()).collect()
    }

    fn put_of(req: NodeRequest) -> (ShardId, Bytes) {
        match req {
            NodeRequest::Put { id, data } => (id, data),
            other => panic!("expected a Put, got {other:?}"),
        }
    }

    /// The two-piece frame is byte for byte what postcard writes for the whole message,
    /// and the server's zero-copy decoder reads it (and postcard's encoding) back, for
    /// lengths on both sides of each varint boundary.
    #[test]
    fn a_put_frame_matches_postcard_and_decodes_without_copying() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 1 << 20] {
            let data = Bytes::from((0..len).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>());
            let id = ShardId::of(&data);
            let whole = frame::encode(&NodeRequest::Put {
                id,
                data: data.clone(),
            })
            .unwrap();
            assert_eq!(whole[6], PUT_TAG, "Put is no longer variant 0");
            let f = NodeRequest::put_frame(id, data.clone()).unwrap();
            assert_eq!(joined(&f), whole, "len {len}");
            // The bytes were not copied into the frame.
            assert_eq!(f.pieces()[1].as_ptr(), data.as_ptr());
            let (got_id, got) = put_of(NodeRequest::from_frame(whole[4..].to_vec()).unwrap());
            assert_eq!((got_id, &got[..]), (id, &data[..]), "len {len}");
        }
    }

    /// A `Data` answer sent in two pieces is what postcard writes for it; other answers
    /// are one piece.
    #[test]
    fn a_data_answer_matches_postcard() {
        for len in [0usize, 5, 200, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 13) as u8).collect();
            let answer: WireResult<NodeResponse> = Ok(NodeResponse::Data(data.clone()));
            let whole = frame::encode(&answer).unwrap();
            let f = NodeResponse::answer_frame(answer).unwrap();
            assert_eq!(f.pieces().len(), 2);
            assert_eq!(joined(&f), whole, "len {len}");
            let back: WireResult<NodeResponse> = frame::decode(&whole[4..]).unwrap();
            assert!(matches!(back, Ok(NodeResponse::Data(d)) if d == data));
        }
        let err: WireResult<NodeResponse> = Err(crate::WireError::not_found("gone"));
        let whole = frame::encode(&err).unwrap();
        let f = NodeResponse::answer_frame(err).unwrap();
        assert_eq!((f.pieces().len(), joined(&f)), (1, whole));
    }

    #[test]
    fn the_decoder_refuses_what_postcard_refuses_and_trailing_bytes() {
        let data = Bytes::from_static(b"some shard bytes");
        let whole = frame::encode(&NodeRequest::Put {
            id: ShardId::of(&data),
            data,
        })
        .unwrap();
        let payload = &whole[4..];
        let cut = NodeRequest::from_frame(payload[..payload.len() - 1].to_vec());
        assert!(matches!(cut, Err(FrameError::Decode(_))), "{cut:?}");
        let mut long = payload.to_vec();
        long.push(0);
        let r = NodeRequest::from_frame(long);
        assert!(matches!(r, Err(FrameError::Trailing)), "{r:?}");
        let mut old = payload.to_vec();
        old[0] ^= 1;
        let r = NodeRequest::from_frame(old);
        assert!(matches!(r, Err(FrameError::Version { .. })), "{r:?}");
        // Other requests go through postcard as they are.
        let ids = vec![ShardId::of(b"a"), ShardId::of(b"b")];
        let sync = frame::encode(&NodeRequest::Sync { ids: ids.clone() }).unwrap();
        match NodeRequest::from_frame(sync[4..].to_vec()).unwrap() {
            NodeRequest::Sync { ids: got } => assert_eq!(got, ids),
            other => panic!("{other:?}"),
        }
        assert!(NodeRequest::from_frame(vec![]).is_err());
    }
}
