//! Fuzz target `control_request`: what it feeds and checks is documented on `ginit::fuzzing::control_request`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::control_request(data));
