//! Fuzz target `glob`: what it feeds and checks is documented on `ginit::fuzzing::glob`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::glob(data));
