//! What the service knows about an image without decoding it: the header probe (format and
//! dimensions, sniffed from the magic bytes), the limits checked from it, the completeness check
//! of a whole body, the error every image failure is reported as, and the geometry of a transform
//! (pure arithmetic). The codecs themselves live in the `resizer-engine` crate.

pub mod complete;
pub mod geometry;
pub mod header;

pub use complete::truncation;

use crate::transform::Format;

/// Bounds checked from the header and the transform, before any large allocation: the work one
/// job can ask for is bounded whatever its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_input_pixels: u64,
    pub max_input_side: u32,
    pub max_output_side: u32,
    /// The output canvas, in pixels (each side is also capped by `max_output_side`).
    pub max_output_pixels: u64,
    /// The output canvas of the slow encoders (AVIF, lossless WebP), in pixels.
    pub max_slow_output_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_pixels: 50_000_000,
            max_input_side: 16_384,
            max_output_side: 8_192,
            max_output_pixels: 40_000_000,
            max_slow_output_pixels: 8_000_000,
        }
    }
}

impl Limits {
    /// Refuses an output canvas of `w × h` in `format` (lossless WebP when `lossless`) over the
    /// pixel caps.
    pub fn check_output(
        &self,
        w: u32,
        h: u32,
        format: Format,
        lossless: bool,
    ) -> Result<(), ImageError> {
        let pixels = u64::from(w) * u64::from(h);
        let slow = format == Format::Avif || (format == Format::Webp && lossless);
        let (limit, what) = if slow {
            (
                self.max_slow_output_pixels,
                format!("a {} output", slow_name(format)),
            )
        } else {
            (self.max_output_pixels, "an output".to_owned())
        };
        if pixels > limit {
            return Err(ImageError::OutputTooLarge(format!(
                "the output would be {w}x{h} pixels ({pixels}), over the limit of {limit} pixels \
                 for {what}; ask for a smaller size"
            )));
        }
        Ok(())
    }

    /// The output check for an input known only from its header: its EXIF orientation is not
    /// known yet, so only an output too large both ways is refused here (the engine checks the
    /// exact one before decoding).
    pub fn check_output_of(
        &self,
        info: &ImageInfo,
        spec: &crate::transform::TransformSpec,
    ) -> Result<(), ImageError> {
        // Before decoding, whether the image is transparent is not known: for `format=auto`,
        // check against what it falls back to when AVIF's smaller limit is not met (WebP or
        // PNG, both allowed the larger canvas).
        let format = spec.output_format(info.format, true, |f| f != Format::Avif);
        let mut first = None;
        for (w, h) in [(info.width, info.height), (info.height, info.width)] {
            let checked = geometry::plan(w, h, spec, self.max_output_side).and_then(|plan| {
                self.check_output(plan.canvas_w, plan.canvas_h, format, spec.lossless())
            });
            match checked {
                Ok(()) => return Ok(()),
                Err(e) => first = first.or(Some(e)),
            }
        }
        Err(first.expect("both orientations were checked"))
    }
}

fn slow_name(format: Format) -> &'static str {
    if format == Format::Avif {
        "AVIF"
    } else {
        "lossless WebP"
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
    /// The transform asks for more output than one job may produce.
    #[error("{0}")]
    OutputTooLarge(String),
    /// The conversion did not finish within its deadline (the same input would not either).
    #[error("{0}")]
    Timeout(String),
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
            ImageError::OutputTooLarge(_) => "output_too_large",
            ImageError::Timeout(_) => "conversion_timeout",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::TransformSpec;

    fn spec(q: &[(&str, &str)]) -> TransformSpec {
        TransformSpec::from_pairs(q.iter().copied()).unwrap()
    }

    #[test]
    fn a_tiny_input_cannot_ask_for_a_huge_canvas() {
        // A 1x1 GIF (35 bytes on the wire) asking for an 8192x8192 contain canvas: 67 MP.
        let gif = ImageInfo {
            format: Format::Gif,
            width: 1,
            height: 1,
        };
        let l = Limits::default();
        let huge = spec(&[("width", "8192"), ("height", "8192"), ("fit", "contain")]);
        let e = l.check_output_of(&gif, &huge).unwrap_err();
        assert_eq!(e.code(), "output_too_large");
        assert!(e.to_string().contains("8192x8192"), "{e}");
        // As AVIF the cap is lower: 4000x4000 passes as PNG, not as AVIF.
        let mid = spec(&[("width", "4000"), ("height", "4000"), ("fit", "contain")]);
        assert!(l.check_output_of(&gif, &mid).is_ok());
        let avif = spec(&[
            ("width", "4000"),
            ("height", "4000"),
            ("fit", "contain"),
            ("format", "avif"),
        ]);
        assert!(
            l.check_output_of(&gif, &avif)
                .unwrap_err()
                .to_string()
                .contains("AVIF")
        );
        let lossless = spec(&[
            ("width", "4000"),
            ("height", "4000"),
            ("fit", "contain"),
            ("format", "webp"),
            ("lossless", "true"),
        ]);
        assert!(l.check_output_of(&gif, &lossless).is_err());
        // Without contain and enlarge, a tiny input makes a tiny output.
        assert!(
            l.check_output_of(&gif, &spec(&[("width", "8192"), ("height", "8192")]))
                .is_ok()
        );
    }

    #[test]
    fn an_orientation_that_fits_is_not_refused_before_decoding() {
        // 4000x10000 to width 6000 with enlarge: 6000x15000 (90 MP), but 6000x2400 (14 MP) if
        // its EXIF says it is rotated: only the engine, which knows, may refuse it.
        let info = ImageInfo {
            format: Format::Jpeg,
            width: 4000,
            height: 10_000,
        };
        let l = Limits {
            max_output_side: 16_384,
            ..Limits::default()
        };
        let s = spec(&[("width", "6000"), ("enlarge", "true")]);
        assert!(l.check_output_of(&info, &s).is_ok());
        assert!(l.check_output(6000, 15_000, Format::Jpeg, false).is_err());
    }
}
