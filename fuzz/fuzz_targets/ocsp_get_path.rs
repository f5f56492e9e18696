#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signet_fuzz::ocsp_get_path(data));
