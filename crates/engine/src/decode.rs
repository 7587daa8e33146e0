//! Decoders. JPEG goes through libjpeg-turbo with DCT-domain shrink-on-load and, for YCbCr
//! images, straight to YUV planes (no colour conversion, no chroma upsampling, half the memory of
//! RGB for 4:2:0). PNG, WebP and GIF go through the `image` crate's codecs.

use std::io::Cursor;

use image::ImageDecoder;
use turbojpeg::{Colorspace, Decompressor, PixelFormat, ScalingFactor, Subsamp, YuvImage};

use resizer_core::image::geometry::Orientation;
use resizer_core::image::header::{self, JpegHeader};
use resizer_core::image::{ImageError, ImageInfo};
use resizer_core::transform::Format;

use crate::pixels::{Bitmap, Pixels, Yuv};

/// A decoded image in its stored (not yet oriented) frame.
#[derive(Debug)]
pub struct Decoded {
    pub pixels: Pixels,
    /// The embedded ICC profile, when the pixels are still in its colour space.
    pub icc: Option<Vec<u8>>,
    pub orientation: Orientation,
}

/// Chooses the JPEG shrink-on-load factor for an overall reduction of `shrink` (≥ 1), leaving
/// at least `residual` for the final filter.
pub fn jpeg_shrink_factor(shrink: f64, residual: f64) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|&s| shrink / s as f64 >= residual)
        .unwrap_or(1)
}

/// The residual reduction left for the resampling filter after shrink-on-load. libvips leaves
/// 2; on the benchmark corpus 1.5 keeps the worst image's SSIM against a Lanczos reference at
/// 0.989 (1.25 drops it to 0.939) while cutting CPU by ~25 % where it applies, e.g. a 12 MP photo
/// to 1024 px wide (3.9×) decodes at half size. See docs/benchmarks.md.
pub const SHRINK_ON_LOAD_RESIDUAL: f64 = 1.5;

/// Reads orientation and ICC without decoding pixels (JPEG).
pub fn jpeg_meta(bytes: &[u8]) -> Result<(JpegHeader<'_>, Orientation), ImageError> {
    let hdr = header::jpeg_header(bytes, true)?;
    let orientation = hdr.exif.map(exif_orientation).unwrap_or_default();
    Ok((hdr, orientation))
}

fn tj_err(e: turbojpeg::Error) -> ImageError {
    match e {
        turbojpeg::Error::TurboJpegError(msg) => ImageError::InvalidImage(format!("JPEG: {msg}")),
        other => ImageError::InvalidImage(format!("JPEG: {other}")),
    }
}

/// libjpeg's warnings (its `JWRN_*` messages): the image was decoded, whatever could be. TurboJPEG
/// does not stop on a warning (`TJPARAM_STOPONWARNING` is off) but still reports it as a failure,
/// and the `turbojpeg` crate does not tell the two apart, so the messages do. Browsers and
/// libvips (`fail=false`, its default) show such files; camera files with a few extraneous bytes
/// before a marker are common. Errors (`JERR_*`) still fail the image, and so does a truncated
/// file (libjpeg's "premature end" warnings): half an image is a failed upload, not a picture
/// (the api refuses truncated inline bodies for the same reason).
const JPEG_WARNINGS: &[&str] = &[
    "Corrupt JPEG data",
    "Warning: unknown JFIF revision number",
    "Invalid SOS parameters for sequential JPEG",
    "Inconsistent progression sequence",
    "Application transferred too few scanlines",
    "Unknown Adobe color transform code",
    "Invalid color quantization mode change",
];

fn warnings_are_fine(r: Result<(), turbojpeg::Error>) -> Result<(), ImageError> {
    match r {
        Err(turbojpeg::Error::TurboJpegError(msg))
            if JPEG_WARNINGS.iter().any(|w| msg.contains(w))
                && !msg.to_ascii_lowercase().contains("premature end") =>
        {
            Ok(())
        }
        r => r.map_err(tj_err),
    }
}

/// Decodes a JPEG, shrinking by `shrink` (1, 2, 4 or 8) in the DCT domain.
pub fn jpeg(
    bytes: &[u8],
    hdr: JpegHeader<'_>,
    orientation: Orientation,
    shrink: usize,
    prefer_yuv: bool,
) -> Result<Decoded, ImageError> {
    let mut d =
        Decompressor::new().map_err(|e| ImageError::Internal(format!("turbojpeg init: {e}")))?;
    // A progressive JPEG with thousands of tiny scans is a classic decoder DoS.
    d.set_scan_limit(500).map_err(tj_err)?;
    let th = d.read_header(bytes).map_err(tj_err)?;
    if th.width != hdr.width as usize || th.height != hdr.height as usize {
        return Err(ImageError::InvalidImage(
            "JPEG: inconsistent frame headers".into(),
        ));
    }
    if !th.is_lossless && shrink > 1 {
        d.set_scaling_factor(ScalingFactor::new(1, shrink))
            .map_err(tj_err)?;
    }
    let sf = d.scaling_factor();
    let (w, h) = (sf.scale(th.width), sf.scale(th.height));
    let icc = hdr.icc;

    let pixels = match th.colorspace {
        Colorspace::YCbCr
            if prefer_yuv
                && !th.is_lossless
                && !matches!(th.subsamp, Subsamp::Unknown | Subsamp::Gray) =>
        {
            let (sx, sy) = th.subsamp.size();
            let layout = YuvImage {
                pixels: (),
                width: w,
                align: 1,
                height: h,
                subsamp: th.subsamp,
            };
            let (yw, yh) = layout.y_size();
            let (cw, chh) = layout.uv_size();
            let len = turbojpeg::yuv_pixels_len(w, 1, h, th.subsamp).map_err(tj_err)?;
            if len != yw * yh + 2 * cw * chh {
                return Err(ImageError::Internal("unexpected YUV plane layout".into()));
            }
            let mut buf = vec![0u8; len];
            let out = YuvImage {
                pixels: buf.as_mut_slice(),
                width: w,
                align: 1,
                height: h,
                subsamp: th.subsamp,
            };
            warnings_are_fine(d.decompress_to_yuv(bytes, out))?;
            Pixels::Yuv(Yuv {
                buf,
                w,
                h,
                yw,
                yh,
                cw,
                chh,
                sx,
                sy,
            })
        }
        Colorspace::Gray => Pixels::Bitmap(decompress(&mut d, bytes, w, h, PixelFormat::GRAY, 1)?),
        Colorspace::CMYK | Colorspace::YCCK => {
            let cmyk = decompress(&mut d, bytes, w, h, PixelFormat::CMYK, 4)?;
            // Photoshop writes Adobe CMYK inverted (0 = full ink); the APP14 marker flags it.
            let inverted = hdr.adobe_transform.is_some();
            let rgb = crate::color::cmyk_to_rgb(&cmyk, inverted, icc.as_deref())?;
            return Ok(Decoded {
                pixels: Pixels::Bitmap(rgb),
                icc: None,
                orientation,
            });
        }
        _ => Pixels::Bitmap(decompress(&mut d, bytes, w, h, PixelFormat::RGB, 3)?),
    };
    Ok(Decoded {
        pixels,
        icc,
        orientation,
    })
}

fn decompress(
    d: &mut Decompressor,
    bytes: &[u8],
    w: usize,
    h: usize,
    format: PixelFormat,
    ch: usize,
) -> Result<Bitmap, ImageError> {
    let mut data = vec![0u8; w * h * ch];
    let image = turbojpeg::Image {
        pixels: data.as_mut_slice(),
        width: w,
        pitch: w * ch,
        height: h,
        format,
    };
    warnings_are_fine(d.decompress(bytes, image))?;
    Ok(Bitmap::new(data, w, h, ch))
}

/// Decodes PNG, WebP or GIF (first frame) with the `image` crate's codecs, to 8 bits per sample.
pub fn other(bytes: &[u8], info: &ImageInfo) -> Result<Decoded, ImageError> {
    // Leave room for one 16-bit RGBA copy of the declared image plus codec working memory.
    let pixels = u64::from(info.width) * u64::from(info.height);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(info.width);
    limits.max_image_height = Some(info.height);
    limits.max_alloc = Some(pixels * 8 + (64 << 20));
    let cursor = Cursor::new(bytes);
    match info.format {
        Format::Png => {
            let dec =
                image::codecs::png::PngDecoder::with_limits(cursor, limits).map_err(img_err)?;
            finish(dec, info)
        }
        Format::Webp => {
            let mut dec = image::codecs::webp::WebPDecoder::new(cursor).map_err(img_err)?;
            dec.set_limits(limits).map_err(img_err)?;
            finish(dec, info)
        }
        Format::Gif => {
            let mut dec = image::codecs::gif::GifDecoder::new(cursor).map_err(img_err)?;
            dec.set_limits(limits).map_err(img_err)?;
            finish(dec, info)
        }
        Format::Jpeg | Format::Avif => Err(ImageError::Internal(format!(
            "no generic decoder for {}",
            info.format
        ))),
    }
}

fn img_err(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::InvalidImage(format!("decoder limit: {l}")),
        image::ImageError::Unsupported(u) => ImageError::UnsupportedFormat(u.to_string()),
        other => ImageError::InvalidImage(other.to_string()),
    }
}

fn finish<D: ImageDecoder>(mut dec: D, info: &ImageInfo) -> Result<Decoded, ImageError> {
    let (w, h) = dec.dimensions();
    if u64::from(w) * u64::from(h) > u64::from(info.width) * u64::from(info.height)
        || w == 0
        || h == 0
    {
        return Err(ImageError::InvalidImage(format!(
            "the {} decoder reports {w}x{h}, unlike its header ({}x{})",
            info.format, info.width, info.height
        )));
    }
    let icc = dec.icc_profile().ok().flatten();
    let orientation = dec
        .exif_metadata()
        .ok()
        .flatten()
        .map(|e| exif_orientation(&e))
        .unwrap_or_default();
    let color = dec.color_type();
    let (w, h) = (w as usize, h as usize);
    let mut raw = vec![
        0u8;
        usize::try_from(dec.total_bytes())
            .map_err(|_| ImageError::InvalidImage("too large".into()))?
    ];
    dec.read_image(&mut raw).map_err(img_err)?;
    use image::ColorType as C;
    let bitmap = match color {
        C::L8 => Bitmap::new(raw, w, h, 1),
        C::Rgb8 => Bitmap::new(raw, w, h, 3),
        C::Rgba8 => Bitmap::new(raw, w, h, 4),
        C::La8 => Bitmap::new(
            raw.chunks_exact(2)
                .flat_map(|p| [p[0], p[0], p[0], p[1]])
                .collect(),
            w,
            h,
            4,
        ),
        C::L16 => Bitmap::new(to_u8(&raw).collect(), w, h, 1),
        C::Rgb16 => Bitmap::new(to_u8(&raw).collect(), w, h, 3),
        C::Rgba16 => Bitmap::new(to_u8(&raw).collect(), w, h, 4),
        C::La16 => {
            let v: Vec<u8> = to_u8(&raw).collect();
            Bitmap::new(
                v.chunks_exact(2)
                    .flat_map(|p| [p[0], p[0], p[0], p[1]])
                    .collect(),
                w,
                h,
                4,
            )
        }
        other => {
            return Err(ImageError::UnsupportedFormat(format!(
                "{} with {other:?} samples",
                info.format
            )));
        }
    };
    Ok(Decoded {
        pixels: Pixels::Bitmap(bitmap),
        icc,
        orientation,
    })
}

/// 16-bit native-endian samples to 8 bits, rounding.
fn to_u8(raw: &[u8]) -> impl Iterator<Item = u8> + '_ {
    raw.chunks_exact(2).map(|c| {
        let v = u32::from(u16::from_ne_bytes([c[0], c[1]]));
        ((v * 255 + 32767) / 65535) as u8
    })
}

/// The orientation stored in a TIFF-structured EXIF blob (with or without the `Exif\0\0`
/// prefix some writers leave in PNG and WebP chunks).
pub fn exif_orientation(exif: &[u8]) -> Orientation {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    image::metadata::Orientation::from_exif_chunk(tiff)
        .map(|o| Orientation::from_exif(u16::from(o.to_exif())))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrink_on_load_leaves_the_residual_to_the_filter() {
        let r = SHRINK_ON_LOAD_RESIDUAL;
        assert_eq!(jpeg_shrink_factor(1.0, r), 1);
        assert_eq!(jpeg_shrink_factor(2.9, r), 1);
        assert_eq!(jpeg_shrink_factor(3.0, r), 2);
        assert_eq!(jpeg_shrink_factor(3.9, r), 2); // 12 MP → 1024 px
        assert_eq!(jpeg_shrink_factor(5.0, r), 2); // 2000 → 400: 1.25 would be left after 4
        assert_eq!(jpeg_shrink_factor(6.0, r), 4);
        assert_eq!(jpeg_shrink_factor(12.0, r), 8);
        assert_eq!(jpeg_shrink_factor(100.0, r), 8);
        // The libvips rule.
        assert_eq!(jpeg_shrink_factor(3.9, 2.0), 1);
        assert_eq!(jpeg_shrink_factor(4.0, 2.0), 2);
    }
}
