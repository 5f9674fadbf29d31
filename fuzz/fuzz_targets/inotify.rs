//! Fuzz target `inotify`: what it feeds and checks is documented on `ginit::fuzzing::inotify`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ginit::fuzzing::inotify(data));
