//! A job spec as the API receives it: any bytes are read and checked without panicking, and a
//! spec that passes its checks stays valid when checked again.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static NET: LazyLock<compute::Network> = LazyLock::new(|| compute::file::builtin_network().expect("the built-in network loads"));

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<compute::JobSpec>(data)
        && let Ok(ok) = spec.normalise(&NET)
    {
        assert!(ok.clone().normalise(&NET).is_ok(), "a normalised spec is valid again");
        let _ = compute::JobReq::compile(&ok, &NET);
    }
});
