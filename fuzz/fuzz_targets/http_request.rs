//! Fuzz target `http_request`: what it feeds and checks is documented on
//! `ginit::fuzzing::http_request`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::http_request(data));
