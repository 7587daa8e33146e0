//! The image engine: bytes in, transformed bytes out.
//!
//! - [`process`]: the one entry point. Bytes, a validated spec and limits in; [`Output`] out.
//!   The limits are checked from the header ([`resizer_core::image::probe`]) before anything is
//!   decoded.
//! - [`pixels`]: the pixel buffers the stages pass along.
//! - decode (shrink-on-load) → (content-aware crop) → resize → colour → orient → encode, in
//!   their own modules.

use std::time::Duration;

mod color;
mod decode;
mod encode;
pub mod pixels;
mod resize;
mod run;
mod smartcrop;

#[doc(hidden)]
pub use run::Tuning;

pub use resizer_core::image::{ImageError, ImageInfo, Limits, probe};
use resizer_core::transform::{Format, TransformSpec};

/// The result of one conversion.
#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub input: ImageInfo,
    /// CPU time of this thread spent in the conversion.
    pub cpu: Duration,
}

/// Decodes (shrinking on load where the format allows), orients, converts to sRGB, resizes,
/// and encodes without metadata.
///
/// The limits are checked from the header before anything is decoded. A panic inside a codec
/// is caught and reported as [`ImageError::InvalidImage`], so one hostile file cannot take the
/// process down. `Output::cpu` is this thread's CPU time for the whole call.
pub fn process(bytes: &[u8], spec: &TransformSpec, limits: &Limits) -> Result<Output, ImageError> {
    process_tuned(bytes, spec, limits, &Tuning::default())
}

/// [`process`], with the CPU time returned beside the result, so that a failed conversion's
/// work is known too (it is billed like a successful one).
pub fn process_measured(
    bytes: &[u8],
    spec: &TransformSpec,
    limits: &Limits,
) -> (Result<Output, ImageError>, Duration) {
    measured(bytes, spec, limits, &Tuning::default())
}

/// [`process`] with the engine's internal knobs exposed, for benchmarks and experiments only.
#[doc(hidden)]
pub fn process_tuned(
    bytes: &[u8],
    spec: &TransformSpec,
    limits: &Limits,
    tuning: &Tuning,
) -> Result<Output, ImageError> {
    let (result, cpu) = measured(bytes, spec, limits, tuning);
    result.map(|out| Output { cpu, ..out })
}

/// Runs one conversion, catching codec panics, and measures this thread's CPU time for it.
fn measured(
    bytes: &[u8],
    spec: &TransformSpec,
    limits: &Limits,
    tuning: &Tuning,
) -> (Result<Output, ImageError>, Duration) {
    let start = cpu_time::ThreadTime::try_now().ok();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run::run_tuned(bytes, spec, limits, tuning)
    }));
    let cpu = start.and_then(|t| t.try_elapsed().ok()).unwrap_or_default();
    let result = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(ImageError::InvalidImage(format!(
                "the codec failed on this input ({msg})"
            )))
        }
    };
    (result, cpu)
}
