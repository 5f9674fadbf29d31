//! Fuzz target `passwd`: what it feeds and checks is documented on `ginit::fuzzing::passwd`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::passwd(data));
