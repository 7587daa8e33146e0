//! Fixture builders: every test image is generated at run time, so the suite needs no binary
//! files and each fixture states exactly what it contains.
#![allow(dead_code)]

use image::ImageEncoder;
use resizer_core::transform::TransformSpec;
use resizer_engine::{Limits, Output, process};
use turbojpeg::{Compressor, PixelFormat, Subsamp};

pub const RED: [u8; 3] = [230, 20, 20];
pub const GREEN: [u8; 3] = [20, 200, 20];
pub const BLUE: [u8; 3] = [20, 20, 230];
pub const WHITE: [u8; 3] = [250, 250, 250];

/// A `w × h` RGB image with four flat quadrants: red, green / blue, white.
pub fn quadrants(w: usize, h: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let c = match (x < w / 2, y < h / 2) {
                (true, true) => RED,
                (false, true) => GREEN,
                (true, false) => BLUE,
                (false, false) => WHITE,
            };
            v.extend_from_slice(&c);
        }
    }
    v
}

/// A smooth, detailed RGB pattern (gradients plus rings) for quality checks.
pub fn pattern(w: usize, h: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
            let r = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt();
            v.push((255.0 * fx) as u8);
            v.push((255.0 * fy) as u8);
            v.push((127.5 + 127.5 * (r * 40.0).sin()) as u8);
        }
    }
    v
}

pub fn rgba_from_rgb(rgb: &[u8], alpha: impl Fn(usize) -> u8) -> Vec<u8> {
    rgb.chunks_exact(3)
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], alpha(i)])
        .collect()
}

pub fn jpeg_encode(
    pixels: &[u8],
    w: usize,
    h: usize,
    format: PixelFormat,
    subsamp: Subsamp,
    progressive: bool,
) -> Vec<u8> {
    let mut c = Compressor::new().unwrap();
    c.set_quality(95).unwrap();
    c.set_subsamp(subsamp).unwrap();
    c.set_progressive(progressive).unwrap();
    let pitch = w * format.size();
    c.compress_to_vec(turbojpeg::Image {
        pixels,
        width: w,
        pitch,
        height: h,
        format,
    })
    .unwrap()
}

pub fn jpeg_rgb(pixels: &[u8], w: usize, h: usize) -> Vec<u8> {
    jpeg_encode(pixels, w, h, PixelFormat::RGB, Subsamp::Sub2x2, false)
}

/// Inserts an application segment right after SOI.
pub fn jpeg_with_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A minimal little-endian TIFF structure with one IFD0 entry: Orientation = `o`.
pub fn exif_orientation(o: u16) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&o.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

pub fn jpeg_with_orientation(jpeg: &[u8], o: u16) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(&exif_orientation(o));
    jpeg_with_segment(jpeg, 0xE1, &payload)
}

pub fn jpeg_with_icc(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let mut payload = b"ICC_PROFILE\0".to_vec();
    payload.extend_from_slice(&[1, 1]);
    payload.extend_from_slice(icc);
    jpeg_with_segment(jpeg, 0xE2, &payload)
}

pub fn png_encode(
    pixels: &[u8],
    w: u32,
    h: u32,
    color: image::ExtendedColorType,
    icc: Option<Vec<u8>>,
    exif: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    if let Some(icc) = icc {
        enc.set_icc_profile(icc).unwrap();
    }
    if let Some(exif) = exif {
        enc.set_exif_metadata(exif).unwrap();
    }
    enc.write_image(pixels, w, h, color).unwrap();
    out
}

pub fn png_rgb(pixels: &[u8], w: u32, h: u32) -> Vec<u8> {
    png_encode(pixels, w, h, image::ExtendedColorType::Rgb8, None, None)
}

pub fn png_palette(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![230, 20, 20, 20, 200, 20, 20, 20, 230, 250, 250, 250]);
        enc.set_trns(vec![255, 255, 255, 0]);
        let mut wr = enc.write_header().unwrap();
        let data: Vec<u8> = (0..w * h).map(|i| ((i % w) * 4 / w) as u8).collect();
        wr.write_image_data(&data).unwrap();
    }
    out
}

pub fn webp_lossy(rgb: &[u8], w: u32, h: u32) -> Vec<u8> {
    webp::Encoder::from_rgb(rgb, w, h)
        .encode_simple(false, 90.0)
        .unwrap()
        .to_vec()
}

pub fn webp_lossy_alpha(rgba: &[u8], w: u32, h: u32) -> Vec<u8> {
    webp::Encoder::from_rgba(rgba, w, h)
        .encode_simple(false, 90.0)
        .unwrap()
        .to_vec()
}

pub fn webp_lossless(rgba: &[u8], w: u32, h: u32) -> Vec<u8> {
    webp::Encoder::from_rgba(rgba, w, h)
        .encode_simple(true, 75.0)
        .unwrap()
        .to_vec()
}

/// Rewraps a simple (VP8L) WebP into the extended format with an EXIF chunk.
pub fn webp_with_exif(simple: &[u8], w: u32, h: u32, exif: &[u8]) -> Vec<u8> {
    assert_eq!(&simple[12..16], b"VP8L");
    let image_chunk = &simple[12..];
    let mut body = b"WEBP".to_vec();
    body.extend_from_slice(b"VP8X");
    body.extend_from_slice(&10u32.to_le_bytes());
    body.push(0x08 | 0x10); // EXIF, alpha
    body.extend_from_slice(&[0, 0, 0]);
    body.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    body.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    body.extend_from_slice(image_chunk);
    body.extend_from_slice(b"EXIF");
    body.extend_from_slice(&(exif.len() as u32).to_le_bytes());
    body.extend_from_slice(exif);
    if exif.len() % 2 == 1 {
        body.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn gif_rgba(rgba: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut out)
        .encode(rgba, w, h, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

pub fn spec(q: &[(&str, &str)]) -> TransformSpec {
    TransformSpec::from_pairs(q.iter().copied()).unwrap()
}

pub fn run(bytes: &[u8], q: &[(&str, &str)]) -> Output {
    process(bytes, &spec(q), &Limits::default()).unwrap_or_else(|e| panic!("{q:?}: {e}"))
}

/// Decodes an output (JPEG, PNG or WebP) to RGBA for pixel checks.
pub fn decode_rgba(bytes: &[u8]) -> (Vec<u8>, usize, usize) {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let img = turbojpeg::decompress(bytes, PixelFormat::RGBA).unwrap();
        return (img.pixels, img.width, img.height);
    }
    let img = image::load_from_memory(bytes).unwrap().to_rgba8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    (img.into_raw(), w, h)
}

/// The RGBA pixel at (x, y).
pub fn px(img: &(Vec<u8>, usize, usize), x: usize, y: usize) -> [u8; 4] {
    let i = (y * img.1 + x) * 4;
    img.0[i..i + 4].try_into().unwrap()
}

pub fn close(a: [u8; 4], b: [u8; 3], tol: u8) -> bool {
    (0..3).all(|i| a[i].abs_diff(b[i]) <= tol)
}

/// Peak-free current RSS of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
