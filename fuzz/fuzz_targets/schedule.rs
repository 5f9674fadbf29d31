//! Fuzz target `schedule`: what it feeds and checks is documented on `ginit::fuzzing::schedule`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::schedule(data));
