#![no_main]
// The body lives in the library (parafetch::fuzzing) so a stable test replays the corpus.
libfuzzer_sys::fuzz_target!(|data: &[u8]| parafetch::fuzzing::links(data));
