//! Fuzzes the engine's entry point: arbitrary bytes with a few transforms. Any panic that
//! escapes `process` (which catches codec panics) or any abort is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use resizer_engine::{Limits, probe, process};
use resizer_core::transform::TransformSpec;

// Small limits keep each run fast and memory-bounded without changing the code paths.
const LIMITS: Limits = Limits {
    max_input_pixels: 4_000_000,
    max_input_side: 4096,
    max_output_side: 1024,
    max_output_pixels: 1 << 20,
    max_slow_output_pixels: 1 << 18,
};

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the transform; the rest is the image.
    let (sel, bytes) = (data[0], &data[1..]);
    let fit = ["inside", "cover", "contain", "fill", "outside"][usize::from(sel % 5)];
    let format = ["jpeg", "png", "webp", "jpeg"][usize::from((sel / 5) % 4)];
    let width = ["64", "17", "300", "1"][usize::from((sel / 20) % 4)];
    let mut pairs = vec![("width", width), ("fit", fit), ("format", format)];
    if sel & 0x80 != 0 {
        pairs.push(("height", "33"));
    }
    let spec = TransformSpec::from_pairs(pairs).expect("valid spec");
    let info = probe(bytes, &LIMITS);
    match process(bytes, &spec, &LIMITS) {
        Ok(out) => {
            assert!(info.is_ok(), "process accepted what probe rejected");
            assert!(out.width >= 1 && out.height >= 1 && !out.bytes.is_empty());
            assert!(out.width <= LIMITS.max_output_side && out.height <= LIMITS.max_output_side);
        }
        Err(e) => {
            // A codec panic caught at the entry point shows up as this message: still a bug
            // worth knowing about, so fail loudly here rather than hide it.
            assert!(
                !e.to_string().contains("the codec failed on this input"),
                "{e}"
            );
            assert_ne!(e.code(), "internal_error", "{e}");
        }
    }
});
