//! The image pipeline: bytes in, transformed bytes out.
//!
//! INTERFACE CONTRACT (used by the api and resize functions; keep these names and shapes):
//! - [`Limits`], with `Default` = 50 MP, 16384 px per input side, 8192 px per output side.
//! - [`probe`]: header-only sniffing of format and dimensions, plus the limit checks, without
//!   decoding pixels. The api calls it before staging anything.
//! - [`process`]: the one entry point. Bytes, a validated spec and limits in; [`Output`] out.
//! - [`ImageError`]: typed, with a stable [`ImageError::code`] and [`ImageError::is_permanent`].

use std::time::Duration;

mod color;
mod decode;
mod encode;
pub mod geometry;
mod header;
mod resize;
mod run;

#[doc(hidden)]
pub use run::Tuning;

use crate::transform::{Format, TransformSpec};

/// Bounds checked from the header, before any large allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_input_pixels: u64,
    pub max_input_side: u32,
    pub max_output_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_pixels: 50_000_000,
            max_input_side: 16_384,
            max_output_side: 8_192,
        }
    }
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

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

/// Why a conversion failed. Every variant caused by the input is permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    #[error("the image cannot be decoded: {0}")]
    InvalidImage(String),
    #[error("the image has {pixels} pixels, over the limit of {limit}")]
    TooManyPixels { pixels: u64, limit: u64 },
    #[error("{0}")]
    DimensionsTooLarge(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// A failure of ours, not of the input (e.g. an encoder bug). Not permanent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ImageError {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::UnsupportedFormat(_) => "unsupported_format",
            ImageError::InvalidImage(_) => "invalid_image",
            ImageError::TooManyPixels { .. } => "too_many_pixels",
            ImageError::DimensionsTooLarge(_) => "dimensions_too_large",
            ImageError::InvalidParameter(_) => "invalid_parameter",
            ImageError::Internal(_) => "internal_error",
        }
    }

    /// Whether retrying the same input can never succeed.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, ImageError::Internal(_))
    }
}

/// Sniffs the format from the magic bytes and reads the dimensions from the header, then checks
/// them against `limits`. Never decodes pixel data; works on a prefix of the file as long as the
/// header is in it.
///
/// PNG, GIF and WebP carry their size in the first 30 bytes. A JPEG's frame header comes after
/// its metadata segments (EXIF with a thumbnail, XMP, ICC), which can reach past 64 KiB in
/// camera files; when the prefix ends before it, this returns `InvalidImage` with a message
/// ending in "header is truncated", and the caller should probe a longer prefix or the whole
/// object rather than reject the upload.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<ImageInfo, ImageError> {
    header::probe(bytes, limits)
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

/// [`process`] with the engine's internal knobs exposed, for benchmarks and experiments only.
#[doc(hidden)]
pub fn process_tuned(
    bytes: &[u8],
    spec: &TransformSpec,
    limits: &Limits,
    tuning: &Tuning,
) -> Result<Output, ImageError> {
    let start = cpu_time::ThreadTime::try_now().ok();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run::run_tuned(bytes, spec, limits, tuning)
    }));
    let cpu = start.and_then(|t| t.try_elapsed().ok()).unwrap_or_default();
    match result {
        Ok(Ok(mut out)) => {
            out.cpu = cpu;
            Ok(out)
        }
        Ok(Err(e)) => Err(e),
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
    }
}
