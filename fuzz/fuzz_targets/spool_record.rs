//! Spool recovery reads files a crash may have torn or a disk may have damaged: the record
//! decoder must never panic or read out of bounds, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mxguard_spool::record::decode;

fuzz_target!(|data: &[u8]| {
    let epoch = data.first().copied().unwrap_or(0) as u64 % 3;
    let mut offset = 0u64;
    while let Ok(d) = decode(data, offset, epoch) {
        assert!(d.end > offset && d.end as usize <= data.len());
        assert!(d.message_offset + d.message_len == d.end);
        offset = d.end;
    }
});
