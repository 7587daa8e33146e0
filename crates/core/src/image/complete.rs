//! Completeness of a whole body: a cheap check, so that a truncated image is refused when it is
//! submitted rather than failing later in the queue.

use crate::transform::Format;

/// A cheap completeness check of a whole body, so that a truncated upload is refused at once
/// rather than failing later in the queue. Lenient with trailing bytes after the end marker.
pub fn truncation(format: Format, bytes: &[u8]) -> Option<&'static str> {
    match format {
        Format::Jpeg => {
            // Entropy-coded data never holds a bare FF DA or FF D9, so the last start-of-scan
            // marker must be followed by an end-of-image marker.
            let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
            let Some(sos) = last_sos else {
                return Some("no image data (no start-of-scan marker)");
            };
            (!bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]))
                .then_some("no end-of-image marker after the image data")
        }
        Format::Png => (!bytes.windows(4).any(|w| w == b"IEND")).then_some("no IEND chunk"),
        Format::Webp => {
            let declared = bytes
                .get(4..8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize + 8)?;
            (declared > bytes.len()).then_some("shorter than its RIFF header declares")
        }
        Format::Gif | Format::Avif => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_checks() {
        let jpeg = [
            &[0xFF, 0xD8, 0xFF, 0xC0, 0, 4, 1, 2][..],
            &[0xFF, 0xDA, 0, 2, 0x12, 0xFF, 0x00, 0x34],
            &[0xFF, 0xD9],
        ]
        .concat();
        assert_eq!(truncation(Format::Jpeg, &jpeg), None);
        let mut trailing = jpeg.clone();
        trailing.extend_from_slice(b"trailing bytes some cameras add");
        assert_eq!(truncation(Format::Jpeg, &trailing), None);
        assert!(truncation(Format::Jpeg, &jpeg[..jpeg.len() - 2]).is_some());
        assert!(truncation(Format::Jpeg, &jpeg[..6]).is_some());
        assert_eq!(truncation(Format::Png, b"\x89PNG....IEND\xaeB`\x82"), None);
        assert!(truncation(Format::Png, b"\x89PNG....IDAT").is_some());
        let mut webp = b"RIFF\x10\0\0\0WEBPVP8 ".to_vec();
        webp.extend_from_slice(&[0; 8]);
        assert_eq!(truncation(Format::Webp, &webp), None);
        assert!(truncation(Format::Webp, &webp[..20]).is_some());
        assert_eq!(truncation(Format::Gif, b"GIF89a"), None);
    }
}
