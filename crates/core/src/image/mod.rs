//! What the service knows about an image without decoding it: the header probe (format and
//! dimensions, sniffed from the magic bytes), the limits checked from it, the completeness check
//! of a whole body, the error every image failure is reported as, and the geometry of a transform
//! (pure arithmetic). The codecs themselves live in the `resizer-engine` crate.

pub mod complete;
pub mod geometry;
pub mod header;

pub use complete::truncation;

use crate::transform::Format;

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
