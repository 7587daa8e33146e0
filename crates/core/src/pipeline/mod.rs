//! The image pipeline: bytes in, transformed bytes out.
//!
//! INTERFACE CONTRACT (used by the api and resize functions; keep these names and shapes):
//! - [`Limits`], with `Default` = 50 MP, 16384 px per input side, 8192 px per output side.
//! - [`probe`]: header-only sniffing of format and dimensions, plus the limit checks, without
//!   decoding pixels. The api calls it before staging anything.
//! - [`process`]: the one entry point. Bytes, a validated spec and limits in; [`Output`] out.
//! - [`ImageError`]: typed, with a stable [`ImageError::code`] and [`ImageError::is_permanent`].

use std::time::Duration;

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
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<ImageInfo, ImageError> {
    let _ = (bytes, limits);
    todo!("engine")
}

/// Decodes (shrinking on load where the format allows), orients, converts to sRGB, resizes,
/// and encodes without metadata.
pub fn process(bytes: &[u8], spec: &TransformSpec, limits: &Limits) -> Result<Output, ImageError> {
    let _ = (bytes, spec, limits);
    todo!("engine")
}
