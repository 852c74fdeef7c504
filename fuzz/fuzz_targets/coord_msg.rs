#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dfs_fuzz::coord_msg(data));
