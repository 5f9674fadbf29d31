//! Fuzz target `config`: what it feeds and checks is documented on `ginit::fuzzing::config`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::config(data));
