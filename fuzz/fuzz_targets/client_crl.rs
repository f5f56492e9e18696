#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| signet_fuzz::client_crl(data));
