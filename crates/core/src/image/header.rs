//! Header-only parsing: format sniffing, dimensions, and the JPEG metadata segments we need
//! (EXIF orientation, ICC profile, Adobe colour transform). Nothing here allocates more than the
//! metadata it returns, so it is safe to run on untrusted input before the limit checks.

use crate::transform::Format;

use super::{ImageError, ImageInfo, Limits};

/// Sniffs the format and reads the dimensions from the header, then applies `limits`.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<ImageInfo, ImageError> {
    let format = sniff(bytes)?;
    let (width, height) = match format {
        Format::Jpeg => jpeg_dimensions(bytes)?,
        Format::Png => png_dimensions(bytes)?,
        Format::Gif => gif_dimensions(bytes)?,
        Format::Webp => webp_dimensions(bytes)?,
        Format::Avif => return Err(ImageError::UnsupportedFormat("avif input".into())),
    };
    let info = ImageInfo {
        format,
        width,
        height,
    };
    check_limits(&info, limits)?;
    Ok(info)
}

pub fn check_limits(info: &ImageInfo, limits: &Limits) -> Result<(), ImageError> {
    if info.width == 0 || info.height == 0 {
        return Err(invalid(format!(
            "the {} header declares an empty image ({}x{})",
            info.format, info.width, info.height
        )));
    }
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_input_pixels {
        return Err(ImageError::TooManyPixels {
            pixels,
            limit: limits.max_input_pixels,
        });
    }
    if info.width > limits.max_input_side || info.height > limits.max_input_side {
        return Err(ImageError::DimensionsTooLarge(format!(
            "the input is {}x{} pixels, over the limit of {} per side",
            info.width, info.height, limits.max_input_side
        )));
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidImage(msg.into())
}

fn truncated(format: &str) -> ImageError {
    invalid(format!("the {format} header is truncated"))
}

/// The format from the magic bytes.
pub fn sniff(b: &[u8]) -> Result<Format, ImageError> {
    if b.is_empty() {
        return Err(invalid("the image is empty (0 bytes)"));
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Ok(Format::Gif);
    }
    if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Ok(Format::Webp);
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        let brand = String::from_utf8_lossy(&b[8..12]).into_owned();
        let what = match brand.as_str() {
            "avif" | "avis" => "AVIF input".to_owned(),
            "heic" | "heix" | "mif1" | "msf1" | "hevc" => "HEIF/HEIC".to_owned(),
            _ => format!("ISO media ({brand:?})"),
        };
        return Err(ImageError::UnsupportedFormat(format!(
            "{what}; accepted inputs are JPEG, PNG, WebP and GIF"
        )));
    }
    let known: &[(&[u8], &str)] = &[
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"\0\0\x01\0", "ICO"),
        (b"8BPS", "PSD"),
        (b"%PDF", "PDF"),
        (b"\xff\x0a", "JPEG XL"),
        (b"\0\0\0\x0cJXL ", "JPEG XL"),
    ];
    for (magic, name) in known {
        if b.starts_with(magic) {
            return Err(ImageError::UnsupportedFormat(format!(
                "{name}; accepted inputs are JPEG, PNG, WebP and GIF"
            )));
        }
    }
    let head = &b[..b.len().min(256)];
    if head.contains(&b'<') && std::str::from_utf8(head).is_ok_and(|s| s.contains("<svg")) {
        return Err(ImageError::UnsupportedFormat(
            "SVG; accepted inputs are JPEG, PNG, WebP and GIF".into(),
        ));
    }
    Err(ImageError::UnsupportedFormat(
        "not a recognised image; accepted inputs are JPEG, PNG, WebP and GIF".into(),
    ))
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn le16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn le24(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from(*b.get(i)?) | u32::from(*b.get(i + 1)?) << 8 | u32::from(*b.get(i + 2)?) << 16)
}

/// What the JPEG marker segments before the first scan tell us.
#[derive(Debug, Default, Clone)]
pub struct JpegHeader<'a> {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    /// The TIFF structure of the EXIF APP1 segment (after `Exif\0\0`).
    pub exif: Option<&'a [u8]>,
    /// The ICC profile, reassembled from its APP2 chunks (None when incomplete or malformed).
    pub icc: Option<Vec<u8>>,
    /// The Adobe APP14 transform flag, when the segment is present.
    pub adobe_transform: Option<u8>,
}

/// Walks the JPEG marker segments up to the first SOS. With `collect` false it stops at the
/// first SOF (probe); with `collect` true it also gathers EXIF, ICC and Adobe segments.
pub fn jpeg_header(b: &[u8], collect: bool) -> Result<JpegHeader<'_>, ImageError> {
    let mut h = JpegHeader::default();
    let mut icc_chunks: Vec<(u8, u8, &[u8])> = Vec::new();
    let mut found_sof = false;
    let mut i = 2; // after SOI
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if b.get(i) != Some(&0xFF) {
            return Err(if i >= b.len() {
                truncated("JPEG")
            } else {
                invalid("the JPEG header has a malformed marker")
            });
        }
        let marker = *b.get(i + 1).ok_or_else(|| truncated("JPEG"))?;
        i += 2;
        match marker {
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => {
                return Err(invalid(
                    "the JPEG header has a second start-of-image marker",
                ));
            }
            0xD9 => return Err(invalid("the JPEG ends before its first frame")),
            _ => {}
        }
        let len = usize::from(be16(b, i).ok_or_else(|| truncated("JPEG"))?);
        if len < 2 {
            return Err(invalid(
                "the JPEG header has a segment shorter than its length field",
            ));
        }
        let seg_end = i + len;
        let data = b.get(i + 2..seg_end.min(b.len())).unwrap_or(&[]);
        let complete = seg_end <= b.len();
        match marker {
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                if data.len() < 6 {
                    return Err(truncated("JPEG"));
                }
                if !found_sof {
                    h.height = u32::from(be16(data, 1).unwrap_or(0));
                    h.width = u32::from(be16(data, 3).unwrap_or(0));
                    h.components = data[5];
                    found_sof = true;
                }
                if !collect {
                    return Ok(h);
                }
            }
            0xDA => {
                if !found_sof {
                    return Err(invalid("the JPEG has a scan before its frame header"));
                }
                break;
            }
            0xE1 if collect && complete && data.starts_with(b"Exif\0\0") && h.exif.is_none() => {
                h.exif = Some(&data[6..]);
            }
            0xE2 if collect
                && complete
                && data.starts_with(b"ICC_PROFILE\0")
                && data.len() > 14 =>
            {
                icc_chunks.push((data[12], data[13], &data[14..]));
            }
            0xEE if collect && complete && data.starts_with(b"Adobe") && data.len() >= 12 => {
                h.adobe_transform = Some(data[11]);
            }
            _ => {}
        }
        if !complete {
            if found_sof {
                break;
            }
            return Err(truncated("JPEG"));
        }
        i = seg_end;
    }
    if !found_sof {
        return Err(truncated("JPEG"));
    }
    h.icc = assemble_icc(icc_chunks);
    Ok(h)
}

/// ICC profiles over 64 KB are split across APP2 segments numbered 1..=count.
fn assemble_icc(mut chunks: Vec<(u8, u8, &[u8])>) -> Option<Vec<u8>> {
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    let count = chunks[0].1;
    let in_order = chunks
        .iter()
        .enumerate()
        .all(|(k, c)| usize::from(c.0) == k + 1 && c.1 == count);
    if !in_order || chunks.len() != usize::from(count) {
        return None;
    }
    Some(chunks.iter().flat_map(|c| c.2.iter().copied()).collect())
}

fn jpeg_dimensions(b: &[u8]) -> Result<(u32, u32), ImageError> {
    let h = jpeg_header(b, false)?;
    Ok((h.width, h.height))
}

fn png_dimensions(b: &[u8]) -> Result<(u32, u32), ImageError> {
    if b.len() < 24 {
        return Err(truncated("PNG"));
    }
    if &b[12..16] != b"IHDR" {
        return Err(invalid("the PNG does not start with an IHDR chunk"));
    }
    let w = be32(b, 16).ok_or_else(|| truncated("PNG"))?;
    let h = be32(b, 20).ok_or_else(|| truncated("PNG"))?;
    Ok((w, h))
}

fn gif_dimensions(b: &[u8]) -> Result<(u32, u32), ImageError> {
    let w = le16(b, 6).ok_or_else(|| truncated("GIF"))?;
    let h = le16(b, 8).ok_or_else(|| truncated("GIF"))?;
    Ok((u32::from(w), u32::from(h)))
}

fn webp_dimensions(b: &[u8]) -> Result<(u32, u32), ImageError> {
    let chunk = b.get(12..16).ok_or_else(|| truncated("WebP"))?;
    let d = 20; // chunk payload
    match chunk {
        b"VP8 " => {
            // 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
            if b.get(d + 3..d + 6).ok_or_else(|| truncated("WebP"))? != [0x9d, 0x01, 0x2a] {
                return Err(invalid("the WebP VP8 frame has no start code"));
            }
            let w = le16(b, d + 6).ok_or_else(|| truncated("WebP"))? & 0x3fff;
            let h = le16(b, d + 8).ok_or_else(|| truncated("WebP"))? & 0x3fff;
            Ok((u32::from(w), u32::from(h)))
        }
        b"VP8L" => {
            if b.get(d) != Some(&0x2f) {
                return Err(invalid("the WebP lossless stream has a bad signature"));
            }
            let bits = le32(b, d + 1).ok_or_else(|| truncated("WebP"))?;
            Ok(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8X" => {
            let w = le24(b, d + 4).ok_or_else(|| truncated("WebP"))? + 1;
            let h = le24(b, d + 7).ok_or_else(|| truncated("WebP"))? + 1;
            Ok((w, h))
        }
        _ => Err(invalid("the WebP has no VP8, VP8L or VP8X chunk first")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_and_rejects() {
        assert_eq!(sniff(&[]).unwrap_err().code(), "invalid_image");
        assert_eq!(
            sniff(b"hello world").unwrap_err().code(),
            "unsupported_format"
        );
        assert_eq!(
            sniff(b"BM\0\0\0\0").unwrap_err().code(),
            "unsupported_format"
        );
        let avif = b"\0\0\0\x1cftypavif\0\0\0\0";
        let err = sniff(avif).unwrap_err();
        assert_eq!(err.code(), "unsupported_format");
        assert!(err.to_string().contains("AVIF"), "{err}");
        assert!(
            sniff(b"<?xml version=\"1.0\"?><svg xmlns=")
                .unwrap_err()
                .to_string()
                .contains("SVG")
        );
    }

    #[test]
    fn icc_chunks_are_reassembled_in_order() {
        let a: &[u8] = b"abc";
        let b: &[u8] = b"def";
        assert_eq!(assemble_icc(vec![(2, 2, b), (1, 2, a)]).unwrap(), b"abcdef");
        assert_eq!(assemble_icc(vec![(1, 2, a)]), None);
        assert_eq!(assemble_icc(vec![(1, 1, a), (1, 1, a)]), None);
    }
}
