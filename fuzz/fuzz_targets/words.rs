//! Fuzz target `words`: what it feeds and checks is documented on `ginit::fuzzing::words`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::words(data));
