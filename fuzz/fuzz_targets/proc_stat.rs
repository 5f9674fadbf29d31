//! Fuzz target `proc_stat`: what it feeds and checks is documented on `ginit::fuzzing::proc_stat`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::proc_stat(data));
