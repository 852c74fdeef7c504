//! Framing: how one message is laid out on a QUIC stream.
//!
//! ```text
//! +----------------+------------------+-------------------------+
//! | length: u32 LE | version: u16 LE  | postcard-encoded body   |
//! +----------------+------------------+-------------------------+
//!                   \_______________ length bytes _____________/
//! ```
//!
//! postcard has no framing of its own, so we add a length prefix. The reader checks the
//! length against a cap *before* allocating the buffer: a peer that announces a 4 GiB
//! frame gets an error, not 4 GiB of our memory. The version travels in every frame so a
//! peer built from another protocol version gets a clear error on that stream.

use crate::{ErrorCode, WireError, PROTOCOL_VERSION};
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame anyone accepts: the largest shard plus room for the message around it.
pub const MAX_FRAME: u32 = crate::MAX_SHARD_SIZE + 64 * 1024;

const HEADER: usize = 4 + 2;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o error on stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the cap of {cap} bytes")]
    TooLarge { len: u32, cap: u32 },
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("peer speaks protocol version {got}, this build speaks {PROTOCOL_VERSION}")]
    Version { got: u16 },
    #[error("cannot decode message (unknown message type, or a body that does not match it): {0}")]
    Decode(#[from] postcard::Error),
    #[error("request not received within {0:?}")]
    Timeout(std::time::Duration),
    #[error("bytes after the frame: a stream carries one message")]
    Trailing,
}

impl From<FrameError> for WireError {
    fn from(e: FrameError) -> Self {
        let code = match e {
            FrameError::Io(_) | FrameError::Timeout(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Invalid,
        };
        WireError::new(code, e.to_string())
    }
}

/// Encodes `msg` into a complete frame (header included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = postcard::to_extend(msg, vec![0u8; HEADER])?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| FrameError::TooLarge {
        len: u32::MAX,
        cap: MAX_FRAME,
    })?;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    Ok(buf)
}

/// Decodes the part of a frame after its length prefix: version, then body.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(body(payload)?)?)
}

/// One frame ready to send, as the pieces quinn takes without copying them
/// (`SendStream::write_chunk`). Cloning it clones reference counts, not bytes: a shard
/// sent to R nodes is encoded once and its bytes exist once in the sender's memory.
#[derive(Debug, Clone)]
pub struct Frame(Vec<bytes::Bytes>);

impl Frame {
    /// `msg` encoded as one piece.
    pub fn of<T: Serialize>(msg: &T) -> Result<Frame, FrameError> {
        Ok(Frame(vec![bytes::Bytes::from(encode(msg)?)]))
    }

    /// A frame whose message ends in a byte string: `head` is the message encoded with
    /// that byte string empty, `tail` the bytes themselves, which are not copied. It relies
    /// on two facts of postcard's format (checked by the tests of its users): fields are
    /// laid out in order with no padding, and a byte string is its length as a varint
    /// followed by the bytes, so an empty one is the single byte 0 at the very end.
    pub(crate) fn with_tail(mut head: Vec<u8>, tail: bytes::Bytes) -> Result<Frame, FrameError> {
        if head.len() <= HEADER || head.pop() != Some(0) {
            return Err(FrameError::Truncated);
        }
        let mut head = postcard::to_extend(&(tail.len() as u64), head)?;
        let len = u32::try_from(head.len() - 4 + tail.len()).map_err(|_| FrameError::TooLarge {
            len: u32::MAX,
            cap: MAX_FRAME,
        })?;
        head[..4].copy_from_slice(&len.to_le_bytes());
        Ok(Frame(vec![bytes::Bytes::from(head), tail]))
    }

    /// The pieces, in order, for `write_chunks`.
    pub fn pieces(&self) -> &[bytes::Bytes] {
        &self.0
    }

    /// The pieces, for a sender that sends the frame once.
    pub fn into_pieces(self) -> Vec<bytes::Bytes> {
        self.0
    }
}

/// The version check of [`decode`], for decoders of their own: the body after it.
pub(crate) fn body(payload: &[u8]) -> Result<&[u8], FrameError> {
    let Some((ver, body)) = payload.split_first_chunk::<2>() else {
        return Err(FrameError::Truncated);
    };
    let got = u16::from_le_bytes(*ver);
    if got != PROTOCOL_VERSION {
        return Err(FrameError::Version { got });
    }
    Ok(body)
}

/// How a server turns the bytes of one request frame (after its length prefix) into the
/// request. Most types are decoded by postcard as they are ([`decode`]); a type may
/// instead keep parts of the buffer it is given, as a `Put` keeps its shard's bytes
/// where they were received instead of copying a megabyte out of the frame.
pub trait FromFrame: DeserializeOwned {
    fn from_frame(payload: Vec<u8>) -> Result<Self, FrameError> {
        decode(&payload)
    }
}

impl FromFrame for String {}

/// How a server encodes its answer to one request. The default encodes it as it is
/// ([`Frame::of`]); a type may instead hand large byte strings to quinn without copying
/// them into the frame, as a node's `Data` answer does with the shard it read.
pub trait ToFrame: Serialize + Sized {
    fn answer_frame(answer: crate::WireResult<Self>) -> Result<Frame, FrameError> {
        Frame::of(&answer)
    }
}

impl ToFrame for String {}

/// Serde for a `bytes::Bytes` field, encoded exactly as `serde_bytes` encodes a
/// `Vec<u8>` (so the wire format does not change). Decoding copies, as for a `Vec`: a
/// type that wants to keep the received buffer implements [`FromFrame`] itself.
pub mod bytes_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| bytes::Bytes::from(b.into_vec()))
    }
}

/// Writes one frame.
pub async fn write_msg<W, T>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let buf = encode(msg)?;
    w.write_all(&buf).await?;
    Ok(())
}

/// Reads one frame of at most `cap` bytes and decodes it.
pub async fn read_msg<R, T>(r: &mut R, cap: u32) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let len = read_len(r, cap).await?;
    // Sized from the announced length, but at most PREALLOC: growing a Vec by doubling
    // to 1 MiB copies ~1 MiB on the way, one more copy of every shard a mount reads. The
    // cap keeps what a peer can make us allocate before it sends anything small; only
    // clients read whole frames this way (servers read requests against a budget, in
    // `rpc.rs`), and they read answers from a server they chose and authenticated.
    let mut payload = Vec::with_capacity(len.min(PREALLOC) as usize);
    read_payload(r, len, &mut payload).await?;
    decode(&payload)
}

/// Reads the end of a stream after its one frame.
///
/// Why bother: a QUIC receive stream dropped before its end was read tells the peer to
/// stop sending (a STOP_SENDING frame), and the peer acknowledges it: two packets, and two
/// wake-ups of the other process, for every request, doubling what a metadata round trip
/// costs on a loaded machine. The end (FIN) normally arrives in the packet that carries
/// the frame's last bytes, so this read is immediate.
pub async fn read_end<R: AsyncRead + Unpin>(r: &mut R) -> Result<(), FrameError> {
    let mut b = [0u8; 1];
    match r.read(&mut b).await? {
        0 => Ok(()),
        _ => Err(FrameError::Trailing),
    }
}

/// The most [`read_msg`] allocates before the bytes arrive: a default 1 MiB shard and its
/// framing fit.
const PREALLOC: u32 = (1 << 20) + (64 << 10);

/// Reads a frame's length prefix and checks it against `cap`.
pub async fn read_len<R: AsyncRead + Unpin>(r: &mut R, cap: u32) -> Result<u32, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(eof_is_truncated)?;
    let len = u32::from_le_bytes(len);
    if len > cap {
        return Err(FrameError::TooLarge { len, cap });
    }
    Ok(len)
}

/// Appends exactly `len` more bytes from `r` to `buf`.
///
/// The buffer grows as bytes arrive rather than being allocated at the announced length
/// up front: a peer that announces a frame of the full cap and then sends one byte a
/// second holds one byte of our memory, not 8 MiB (see `rpc.rs` for the budget that
/// bounds the bytes that really did arrive).
pub async fn read_payload<R: AsyncRead + Unpin>(
    r: &mut R,
    len: u32,
    buf: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let want = len as usize;
    let got = r.take(u64::from(len)).read_to_end(buf).await?;
    if got < want {
        return Err(FrameError::Truncated);
    }
    Ok(())
}

fn eof_is_truncated(e: std::io::Error) -> FrameError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        FrameError::Truncated
    } else {
        FrameError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_msg::NodeRequest;
    use crate::ShardId;

    #[tokio::test]
    async fn round_trip() {
        let data = vec![7u8; 1000];
        let msg = NodeRequest::Put {
            id: ShardId::of(&data),
            data: data.clone().into(),
        };
        let buf = encode(&msg).unwrap();
        let got: NodeRequest = read_msg(&mut &buf[..], MAX_FRAME).await.unwrap();
        match got {
            NodeRequest::Put { id, data: d } => {
                assert_eq!(id, ShardId::of(&data));
                assert_eq!(d, data);
            }
            other => panic!("wrong message {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_frame_refused_before_allocation() {
        // Announce u32::MAX bytes but send none: must fail on the length alone.
        let buf = u32::MAX.to_le_bytes();
        let r: Result<NodeRequest, _> = read_msg(&mut &buf[..], MAX_FRAME).await;
        assert!(matches!(r, Err(FrameError::TooLarge { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn truncated_and_garbage_frames() {
        let buf = encode(&NodeRequest::Status).unwrap();
        let r: Result<NodeRequest, _> = read_msg(&mut &buf[..buf.len() - 1], MAX_FRAME).await;
        assert!(matches!(r, Err(FrameError::Truncated)), "{r:?}");
        let mut bad = buf.clone();
        bad[6] = 0xff; // unknown enum variant
        let r: Result<NodeRequest, _> = read_msg(&mut &bad[..], MAX_FRAME).await;
        assert!(matches!(r, Err(FrameError::Decode(_))), "{r:?}");
    }

    #[tokio::test]
    async fn wrong_version_is_named() {
        let mut buf = encode(&NodeRequest::Status).unwrap();
        buf[4..6].copy_from_slice(&99u16.to_le_bytes());
        let r: Result<NodeRequest, _> = read_msg(&mut &buf[..], MAX_FRAME).await;
        assert!(matches!(r, Err(FrameError::Version { got: 99 })), "{r:?}");
    }
}
