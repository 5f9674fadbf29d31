//! Fuzz target `units`: what it feeds and checks is documented on `ginit::fuzzing::units`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::units(data));
