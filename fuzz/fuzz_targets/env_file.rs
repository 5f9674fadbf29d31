//! Fuzz target `env_file`: what it feeds and checks is documented on `ginit::fuzzing::env_file`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::env_file(data));
