//! Fuzz target `http_response`: what it feeds and checks is documented on `ginit::fuzzing::http_response`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::http_response(data));
