//! The wall clock, in the form inode times are stored in.

use dfs_proto::coord_msg::NanoTime;
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in nanoseconds since the epoch, for inode times. A clock set before
/// 1970 reads as 0 and one past the year 2262 as `i64::MAX`: times are stamps, never
/// arithmetic that must not overflow.
pub(crate) fn now_ns() -> NanoTime {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}
