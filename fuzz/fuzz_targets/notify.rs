//! Fuzz target `notify`: what it feeds and checks is documented on `ginit::fuzzing::notify`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::notify(data));
