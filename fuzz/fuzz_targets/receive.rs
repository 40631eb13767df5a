#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| internode::fuzzing::receive(data));
