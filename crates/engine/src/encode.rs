//! Encoders. None of them is given any metadata, so outputs carry no EXIF, ICC or XMP.

use image::ImageEncoder;
use turbojpeg::{Compressor, PixelFormat, Subsamp, YuvPlanesImage};

use crate::pixels::Bitmap;
use crate::pixels::Planes;
use resizer_core::image::ImageError;

/// rav1e speed for AVIF (0 slowest … 10 fastest). Measured on one core for a 1024×640 output
/// of a photo at q80: speed 8 ≈ 1.2 s, 9 ≈ 480 ms, 10 ≈ 200 ms. Only 10 keeps a 1024 px output
/// (up to 1024×1024) under 500 ms; see docs/benchmarks.md.
pub const AVIF_SPEED: u8 = 10;

fn enc_err(what: &str, e: impl std::fmt::Display) -> ImageError {
    ImageError::Internal(format!("{what} encoder: {e}"))
}

fn jpeg_compressor(quality: u8) -> Result<Compressor, ImageError> {
    let mut c = Compressor::new().map_err(|e| enc_err("JPEG", e))?;
    c.set_quality(i32::from(quality))
        .map_err(|e| enc_err("JPEG", e))?;
    c.set_subsamp(Subsamp::Sub2x2)
        .map_err(|e| enc_err("JPEG", e))?;
    Ok(c)
}

/// A 4:2:0 JPEG straight from resized planes: no colour conversion, no chroma downsampling.
pub fn jpeg_from_planes(p: &Planes, quality: u8) -> Result<Vec<u8>, ImageError> {
    // libjpeg-turbo wants the Y plane padded to whole chroma samples (even width and height for
    // 4:2:0); replicate the last column and row.
    let (pw, ph) = (p.cw * 2, p.chh * 2);
    let y = if (pw, ph) == (p.w, p.h) {
        std::borrow::Cow::Borrowed(&p.y[..])
    } else {
        let mut y = Vec::with_capacity(pw * ph);
        for row in 0..ph {
            let src = &p.y[row.min(p.h - 1) * p.w..][..p.w];
            y.extend_from_slice(src);
            y.extend(std::iter::repeat_n(src[p.w - 1], pw - p.w));
        }
        std::borrow::Cow::Owned(y)
    };
    let image = YuvPlanesImage {
        y_plane: &y[..],
        u_plane: &p.u[..],
        v_plane: &p.v[..],
        width: p.w,
        height: p.h,
        y_stride: pw,
        u_stride: p.cw,
        v_stride: p.cw,
        subsamp: Subsamp::Sub2x2,
    };
    let mut c = jpeg_compressor(quality)?;
    c.compress_yuv_planes_to_vec(&image)
        .map_err(|e| enc_err("JPEG", e))
}

/// A JPEG from grey (one channel, written as greyscale) or RGB (4:2:0).
pub fn jpeg(b: &Bitmap, quality: u8) -> Result<Vec<u8>, ImageError> {
    let mut c = jpeg_compressor(quality)?;
    let format = match b.ch {
        1 => {
            c.set_subsamp(Subsamp::Gray)
                .map_err(|e| enc_err("JPEG", e))?;
            PixelFormat::GRAY
        }
        3 => PixelFormat::RGB,
        n => return Err(ImageError::Internal(format!("JPEG encoder: {n} channels"))),
    };
    let image = turbojpeg::Image {
        pixels: &b.data[..],
        width: b.w,
        pitch: b.w * b.ch,
        height: b.h,
        format,
    };
    c.compress_to_vec(image).map_err(|e| enc_err("JPEG", e))
}

pub fn png(b: &Bitmap) -> Result<Vec<u8>, ImageError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let color = match b.ch {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        n => return Err(ImageError::Internal(format!("PNG encoder: {n} channels"))),
    };
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(&b.data, b.w as u32, b.h as u32, color)
        .map_err(|e| enc_err("PNG", e))?;
    Ok(out)
}

/// WebP via libwebp: lossy at `quality`, or lossless.
pub fn webp(b: &Bitmap, quality: u8, lossless: bool) -> Result<Vec<u8>, ImageError> {
    let (w, h) = (b.w as u32, b.h as u32);
    let enc = match b.ch {
        3 => webp::Encoder::from_rgb(&b.data, w, h),
        4 => webp::Encoder::from_rgba(&b.data, w, h),
        n => return Err(ImageError::Internal(format!("WebP encoder: {n} channels"))),
    };
    let mem = enc
        .encode_simple(lossless, f32::from(quality))
        .map_err(|e| enc_err("WebP", format!("{e:?}")))?;
    Ok(mem.to_vec())
}

/// AVIF via rav1e (single-threaded: the Lambda has one vCPU's worth per conversion).
pub fn avif(b: &Bitmap, quality: u8, speed: u8) -> Result<Vec<u8>, ImageError> {
    use ravif::{Encoder, Img, RGB8, RGBA8};
    let enc = Encoder::new()
        .with_quality(f32::from(quality))
        .with_alpha_quality(f32::from(quality))
        .with_speed(speed)
        .with_num_threads(Some(1));
    let res = match b.ch {
        3 => {
            let px: Vec<RGB8> = b
                .data
                .chunks_exact(3)
                .map(|p| RGB8::new(p[0], p[1], p[2]))
                .collect();
            enc.encode_rgb(Img::new(&px[..], b.w, b.h))
        }
        4 => {
            let px: Vec<RGBA8> = b
                .data
                .chunks_exact(4)
                .map(|p| RGBA8::new(p[0], p[1], p[2], p[3]))
                .collect();
            enc.encode_rgba(Img::new(&px[..], b.w, b.h))
        }
        n => return Err(ImageError::Internal(format!("AVIF encoder: {n} channels"))),
    };
    Ok(res.map_err(|e| enc_err("AVIF", e))?.avif_file)
}
