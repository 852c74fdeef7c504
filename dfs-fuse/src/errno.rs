//! The one place where dfs errors become errno values for the kernel.
//!
//! The match is exhaustive on purpose: adding an [`ErrorCode`] will not compile until
//! someone decides here what a program on the mount should see.

use dfs_proto::{ErrorCode, WireError};

/// The errno a program sees for `e`.
pub fn errno(e: &WireError) -> i32 {
    match e.code {
        ErrorCode::NotFound => libc::ENOENT,
        ErrorCode::Exists => libc::EEXIST,
        ErrorCode::NoSpace => libc::ENOSPC,
        // A cluster that cannot be reached, or data that cannot be verified, is an I/O
        // error to the program: the same thing a failing disk reports.
        ErrorCode::Unavailable => libc::EIO,
        ErrorCode::Corrupt => libc::EIO,
        ErrorCode::Invalid => libc::EINVAL,
        ErrorCode::Unauthorized => libc::EACCES,
        ErrorCode::Internal => libc::EIO,
        ErrorCode::NotEmpty => libc::ENOTEMPTY,
        ErrorCode::NotDir => libc::ENOTDIR,
        ErrorCode::IsDir => libc::EISDIR,
        ErrorCode::NameTooLong => libc::ENAMETOOLONG,
        ErrorCode::NotPermitted => libc::EPERM,
        ErrorCode::NoAttr => libc::ENODATA,
        ErrorCode::TooBig => libc::ERANGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_codes_stay_distinct() {
        let e = |c| errno(&WireError::new(c, ""));
        assert_eq!(e(ErrorCode::NotFound), libc::ENOENT);
        assert_eq!(e(ErrorCode::NoSpace), libc::ENOSPC);
        assert_eq!(e(ErrorCode::NotEmpty), libc::ENOTEMPTY);
        assert_eq!(e(ErrorCode::Unavailable), libc::EIO);
        assert_eq!(e(ErrorCode::NoAttr), libc::ENODATA);
    }
}
