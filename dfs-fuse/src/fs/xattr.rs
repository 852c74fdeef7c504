//! Extended attributes: straight to the coordinator, except that a file this mount
//! knows to have none (a "bare" inode, see `lookup_cache.rs`) is answered here, which
//! spares `ls -l` and `cp -a` one round trip per file.

use super::Fs;
use crate::backend::Backend;
use dfs_proto::coord_msg::{CoordRequest, CoordResponse, XattrMode};
use dfs_proto::{Ino, WireError, WireResult};

impl<B: Backend> Fs<B> {
    pub async fn setxattr(
        &self,
        ino: Ino,
        name: &str,
        value: Vec<u8>,
        mode: XattrMode,
    ) -> WireResult<()> {
        self.meta(CoordRequest::SetXattr {
            ino,
            name: name.into(),
            value,
            mode,
        })
        .await
        .map(drop)
    }

    pub async fn getxattr(&self, ino: Ino, name: &str) -> WireResult<Vec<u8>> {
        if self.lookups.is_bare(ino, std::time::Instant::now()) {
            return Err(WireError::new(
                dfs_proto::ErrorCode::NoAttr,
                format!("no extended attribute {name:?}"),
            ));
        }
        expect!(
            self.meta(CoordRequest::GetXattr {
                ino,
                name: name.into()
            })
            .await?,
            Bytes,
            "GetXattr"
        )
    }

    pub async fn listxattr(&self, ino: Ino) -> WireResult<Vec<String>> {
        if self.lookups.is_bare(ino, std::time::Instant::now()) {
            return Ok(Vec::new());
        }
        expect!(
            self.meta(CoordRequest::ListXattr { ino }).await?,
            Names,
            "ListXattr"
        )
    }

    pub async fn removexattr(&self, ino: Ino, name: &str) -> WireResult<()> {
        self.meta(CoordRequest::RemoveXattr {
            ino,
            name: name.into(),
        })
        .await
        .map(drop)
    }
}
