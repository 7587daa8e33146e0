//! Fuzzes the transform parser: arbitrary name=value pairs must parse or fail with a message,
//! never panic, and a parsed spec must survive a serde round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resizer_core::transform::TransformSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(&str, &str)> = text
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    match TransformSpec::from_pairs(pairs) {
        Ok(spec) => {
            let json = serde_json::to_string(&spec).expect("serialises");
            let back: TransformSpec = serde_json::from_str(&json).expect("round trips");
            assert_eq!(back, spec);
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            assert!(
                e.message.len() < 400,
                "message echoes too much input: {}",
                e.message.len()
            );
        }
    }
});
