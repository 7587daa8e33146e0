//! Colour: YCbCr → RGB, CMYK → RGB, ICC profiles → sRGB (moxcms), alpha flattening and the
//! letterbox canvas.

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

use crate::pixels::Bitmap;
use resizer_core::image::ImageError;

/// JFIF (full-range BT.601) YCbCr → RGB for planes of the same size.
pub fn yuv_to_rgb(y: &[u8], u: &[u8], v: &[u8], w: usize, h: usize) -> Bitmap {
    // 16.16 fixed point, the same coefficients libjpeg uses.
    const CR_R: i32 = 91_881; // 1.402
    const CB_G: i32 = -22_554; // -0.344136
    const CR_G: i32 = -46_802; // -0.714136
    const CB_B: i32 = 116_130; // 1.772
    const HALF: i32 = 1 << 15;
    let mut out = vec![0u8; w * h * 3];
    for (((px, &y), &cb), &cr) in out
        .chunks_exact_mut(3)
        .zip(&y[..w * h])
        .zip(&u[..w * h])
        .zip(&v[..w * h])
    {
        let y = i32::from(y) << 16;
        let cb = i32::from(cb) - 128;
        let cr = i32::from(cr) - 128;
        px[0] = ((y + CR_R * cr + HALF) >> 16).clamp(0, 255) as u8;
        px[1] = ((y + CB_G * cb + CR_G * cr + HALF) >> 16).clamp(0, 255) as u8;
        px[2] = ((y + CB_B * cb + HALF) >> 16).clamp(0, 255) as u8;
    }
    Bitmap::new(out, w, h, 3)
}

fn cms_err(e: moxcms::CmsError) -> ImageError {
    ImageError::InvalidImage(format!("ICC profile: {e}"))
}

/// CMYK (4 samples) → RGB. With a CMYK ICC profile the conversion is colour-managed; without
/// one it is the naive complement. `inverted` is Adobe's convention (0 = full ink).
pub fn cmyk_to_rgb(
    cmyk: &Bitmap,
    inverted: bool,
    icc: Option<&[u8]>,
) -> Result<Bitmap, ImageError> {
    let profile = icc
        .and_then(|p| ColorProfile::new_from_slice(p).ok())
        .filter(|p| p.color_space == DataColorSpace::Cmyk);
    let mut src = cmyk.data.clone();
    if let Some(profile) = profile {
        // ICC CMYK is "0 = no ink"; Adobe's files store the complement.
        if inverted {
            src.iter_mut().for_each(|v| *v = 255 - *v);
        }
        let t = profile
            .create_transform_8bit(
                Layout::Rgba,
                &ColorProfile::new_srgb(),
                Layout::Rgb,
                TransformOptions::default(),
            )
            .map_err(cms_err)?;
        let mut out = vec![0u8; cmyk.w * cmyk.h * 3];
        t.transform(&src, &mut out).map_err(cms_err)?;
        return Ok(Bitmap::new(out, cmyk.w, cmyk.h, 3));
    }
    let mut out = Vec::with_capacity(cmyk.w * cmyk.h * 3);
    for p in src.chunks_exact(4) {
        // "Ink left" per channel: with inverted data the stored value already is 255 - ink.
        let (c, m, y, k) = if inverted {
            (p[0], p[1], p[2], p[3])
        } else {
            (255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3])
        };
        let k = u32::from(k);
        for x in [c, m, y] {
            out.push(((u32::from(x) * k + 127) / 255) as u8);
        }
    }
    Ok(Bitmap::new(out, cmyk.w, cmyk.h, 3))
}

/// Whether a profile is (close enough to) sRGB that converting would change nothing visible.
fn is_srgb(p: &ColorProfile) -> bool {
    if p.color_space != DataColorSpace::Rgb {
        return false;
    }
    let srgb = ColorProfile::new_srgb();
    let close = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < 0.003 && (a.y - b.y).abs() < 0.003 && (a.z - b.z).abs() < 0.003
    };
    let colorants = close(p.red_colorant, srgb.red_colorant)
        && close(p.green_colorant, srgb.green_colorant)
        && close(p.blue_colorant, srgb.blue_colorant);
    let named = p.description.as_ref().is_some_and(|d| {
        let text = format!("{d:?}");
        text.contains("sRGB")
    });
    colorants && named
}

/// Converts an RGB(A) or grey bitmap from the embedded profile to sRGB, in place where possible.
/// Profiles that are sRGB already, or that cannot be parsed, leave the pixels alone (like
/// libvips, a broken profile is ignored rather than failing the image).
pub fn icc_to_srgb(b: Bitmap, icc: &[u8]) -> Result<Bitmap, ImageError> {
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        return Ok(b);
    };
    let srgb = ColorProfile::new_srgb();
    match (profile.color_space, b.ch) {
        (DataColorSpace::Rgb, 3 | 4) => {
            if is_srgb(&profile) {
                return Ok(b);
            }
            let layout = if b.ch == 4 { Layout::Rgba } else { Layout::Rgb };
            let Ok(t) =
                profile.create_transform_8bit(layout, &srgb, layout, TransformOptions::default())
            else {
                return Ok(b);
            };
            let mut out = vec![0u8; b.data.len()];
            t.transform(&b.data, &mut out).map_err(cms_err)?;
            Ok(Bitmap::new(out, b.w, b.h, b.ch))
        }
        (DataColorSpace::Gray, 1) => {
            let Ok(t) = profile.create_transform_8bit(
                Layout::Gray,
                &srgb,
                Layout::Rgb,
                TransformOptions::default(),
            ) else {
                return Ok(b);
            };
            let mut out = vec![0u8; b.w * b.h * 3];
            t.transform(&b.data, &mut out).map_err(cms_err)?;
            Ok(Bitmap::new(out, b.w, b.h, 3))
        }
        _ => Ok(b),
    }
}

/// Whether converting with this profile would change anything (false for sRGB and unusable
/// profiles). Lets the JPEG fast path stay in YUV when the profile is just sRGB.
pub fn needs_conversion(icc: &[u8]) -> bool {
    match ColorProfile::new_from_slice(icc) {
        Ok(p) => match p.color_space {
            DataColorSpace::Rgb => !is_srgb(&p),
            DataColorSpace::Gray => true,
            _ => false,
        },
        Err(_) => false,
    }
}

/// Composites straight-alpha RGBA over an opaque background, giving RGB.
pub fn flatten(b: &Bitmap, bg: [u8; 3]) -> Bitmap {
    debug_assert_eq!(b.ch, 4);
    let mut out = Vec::with_capacity(b.w * b.h * 3);
    for p in b.data.chunks_exact(4) {
        let a = u32::from(p[3]);
        for c in 0..3 {
            let v = u32::from(p[c]) * a + u32::from(bg[c]) * (255 - a);
            out.push(((v + 127) / 255) as u8);
        }
    }
    Bitmap::new(out, b.w, b.h, 3)
}

/// Expands grey to RGB, or drops/adds nothing when already `ch` channels.
pub fn to_channels(b: Bitmap, ch: usize) -> Bitmap {
    if b.ch == ch {
        return b;
    }
    let data: Vec<u8> = match (b.ch, ch) {
        (1, 3) => b.data.iter().flat_map(|&g| [g, g, g]).collect(),
        (1, 4) => b.data.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        (3, 4) => b
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        (4, 3) => b
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        (3, 1) | (4, 1) => b.data.chunks_exact(b.ch).map(|p| p[0]).collect(),
        _ => return b,
    };
    Bitmap::new(data, b.w, b.h, ch)
}

/// Grey becomes RGB; RGB and RGBA stay as they are (WebP and AVIF need colour).
pub fn to_channels_min3(b: Bitmap) -> Bitmap {
    if b.ch < 3 { to_channels(b, 3) } else { b }
}

/// Places `b` at `(x, y)` on a `cw × ch` canvas filled with `fill` (same channel count as `b`).
pub fn embed(b: &Bitmap, cw: usize, chh: usize, x: usize, y: usize, fill: &[u8]) -> Bitmap {
    let n = b.ch;
    let mut out: Vec<u8> = fill.iter().copied().cycle().take(cw * chh * n).collect();
    for row in 0..b.h {
        let src = &b.data[row * b.w * n..(row + 1) * b.w * n];
        let o = ((y + row) * cw + x) * n;
        out[o..o + b.w * n].copy_from_slice(src);
    }
    Bitmap::new(out, cw, chh, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuv_primaries() {
        // Pure red in JFIF YCbCr is (76, 85, 255).
        let b = yuv_to_rgb(&[76], &[85], &[255], 1, 1);
        assert!(
            b.data[0] >= 253 && b.data[1] <= 2 && b.data[2] <= 2,
            "{:?}",
            b.data
        );
        let g = yuv_to_rgb(&[128], &[128], &[128], 1, 1);
        assert_eq!(g.data, vec![128, 128, 128]);
    }

    #[test]
    fn naive_cmyk() {
        let plain = Bitmap::new(vec![0, 255, 255, 0], 1, 1, 4); // cyan-free, full M and Y → red
        assert_eq!(
            cmyk_to_rgb(&plain, false, None).unwrap().data,
            vec![255, 0, 0]
        );
        let adobe = Bitmap::new(vec![255, 0, 0, 255], 1, 1, 4); // the same, Adobe-inverted
        assert_eq!(
            cmyk_to_rgb(&adobe, true, None).unwrap().data,
            vec![255, 0, 0]
        );
    }

    #[test]
    fn flatten_and_embed() {
        let b = Bitmap::new(vec![255, 0, 0, 0, 0, 0, 255, 255], 2, 1, 4);
        assert_eq!(flatten(&b, [10, 20, 30]).data, vec![10, 20, 30, 0, 0, 255]);
        let g = Bitmap::new(vec![9], 1, 1, 1);
        assert_eq!(embed(&g, 3, 1, 1, 0, &[0]).data, vec![0, 9, 0]);
    }

    #[test]
    fn srgb_profiles_are_left_alone() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        assert!(
            !needs_conversion(&srgb) || !is_srgb(&ColorProfile::new_from_slice(&srgb).unwrap())
        );
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        assert!(needs_conversion(&p3));
        assert!(!needs_conversion(b"garbage"));
    }
}
