//! A GH Archive line (the oss ingest's untrusted input): any bytes give an event or an error,
//! never a panic; an event's row survives a segment's round trip; and any bytes read as a
//! segment give rows or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = oss_core::event::parse(data) {
        let mut names = oss_core::row::Names::default();
        let row = oss_core::row::reduce(&e, &mut names);
        let bytes = oss::segment::encode(&[row], &names).expect("a row encodes");
        let (rows, back) = oss::segment::decode(&bytes).expect("what was encoded decodes");
        assert_eq!(rows, [row]);
        assert_eq!(back, names);
    }
    let _ = oss::segment::decode(data);
});
