//! Errors that cross the wire: a small, stable code set plus a human-readable message.
//!
//! Callers branch on the [`ErrorCode`]; the message is for logs and people. The FUSE client
//! maps codes to errno in exactly one place (`dfs-fuse/src/errno.rs`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What went wrong, as far as the caller needs to know to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The named inode, entry, shard, node or attribute does not exist.
    NotFound,
    /// The name (or shard, or node) already exists.
    Exists,
    /// No node (or not this node) has room for the data.
    NoSpace,
    /// A peer needed for the request is unreachable or timed out; retrying later may work.
    Unavailable,
    /// Stored bytes failed verification against their checksum.
    Corrupt,
    /// The request is malformed or not allowed in this state (bad name, wrong version...).
    Invalid,
    /// The peer is not allowed to make this request.
    Unauthorized,
    /// A bug or an unexpected local failure (I/O error on the metadata store...).
    Internal,
    // Namespace conditions a POSIX client must tell apart.
    /// rmdir of a directory that still has entries.
    NotEmpty,
    /// A path component, or the target of an operation, is not a directory.
    NotDir,
    /// The operation needs a non-directory but got a directory.
    IsDir,
    /// A name longer than [`crate::MAX_NAME_LEN`] bytes.
    NameTooLong,
    /// The operation is not permitted (EPERM), e.g. a hard link to a directory.
    NotPermitted,
    /// The extended attribute does not exist (ENODATA).
    NoAttr,
    /// A value or list does not fit the caller's buffer or a limit (ERANGE / E2BIG).
    TooBig,
}

/// An error with its code and a message meant for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, m)
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, m)
    }
    pub fn corrupt(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Corrupt, m)
    }
    pub fn no_space(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::NoSpace, m)
    }
    /// The response variant did not match the request: a peer bug, never user error.
    pub fn unexpected(what: &str) -> Self {
        Self::internal(format!("unexpected response to {what}"))
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Result type of every request.
pub type WireResult<T> = Result<T, WireError>;
