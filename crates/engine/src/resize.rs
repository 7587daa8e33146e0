//! SIMD resampling with `fast_image_resize` (AVX2/SSE4.1 on x86-64, NEON on arm64).

use std::sync::LazyLock;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{Filter, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::pixels::{Bitmap, Planes, Yuv};
use resizer_core::image::ImageError;
use resizer_core::image::geometry::RectF;

/// The resampling filter: Lanczos3, what libvips, sharp and Pillow use for downscaling (see
/// docs/benchmarks.md for the comparison with Catmull-Rom).
///
/// fast_image_resize evaluates the kernel for every weight of every resize (two `sin` calls
/// each); on a 400 px thumbnail that was ~9 % of the whole conversion. This is the same kernel
/// read from a table with linear interpolation (error < 1e-6, far below the 14-bit fixed-point
/// weights it is rounded to).
pub fn default_filter() -> FilterType {
    FilterType::Custom(Filter::new("Lanczos3", lanczos3_table, 3.0).expect("finite support"))
}

const STEPS: usize = 1024;

static LANCZOS3: LazyLock<Vec<f64>> = LazyLock::new(|| {
    (0..=3 * STEPS + 1)
        .map(|i| lanczos3_exact(i as f64 / STEPS as f64))
        .collect()
});

fn lanczos3_exact(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    if x.abs() >= 3.0 {
        return 0.0;
    }
    let px = std::f64::consts::PI * x;
    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
}

fn lanczos3_table(x: f64) -> f64 {
    let x = x.abs();
    if x >= 3.0 {
        return 0.0;
    }
    let p = x * STEPS as f64;
    let i = p as usize;
    let t = &*LANCZOS3;
    t[i] + (t[i + 1] - t[i]) * (p - i as f64)
}

fn resize_err(e: impl std::fmt::Display) -> ImageError {
    ImageError::Internal(format!("resize: {e}"))
}

/// Keeps a crop rectangle inside a `w × h` image (floating-point rounding can push it out by
/// a hair, which fast_image_resize rejects).
fn clamp(r: RectF, w: usize, h: usize) -> RectF {
    let (w, h) = (w as f64, h as f64);
    let x = r.x.clamp(0.0, w - 1e-3);
    let y = r.y.clamp(0.0, h - 1e-3);
    RectF {
        x,
        y,
        w: r.w.clamp(1e-3, w - x),
        h: r.h.clamp(1e-3, h - y),
    }
}

/// Resizes the `crop` region of an interleaved `sw × sh` image of `pt` pixels to `dw × dh`.
/// Alpha (U8x4) is premultiplied while filtering.
#[allow(clippy::too_many_arguments)]
fn resize_raw(
    resizer: &mut Resizer,
    src: &[u8],
    sw: usize,
    sh: usize,
    pt: PixelType,
    crop: RectF,
    dw: usize,
    dh: usize,
    filter: FilterType,
) -> Result<Vec<u8>, ImageError> {
    let whole = crop.x == 0.0 && crop.y == 0.0 && crop.w == sw as f64 && crop.h == sh as f64;
    if whole && dw == sw && dh == sh {
        return Ok(src[..sw * sh * pt.size()].to_vec());
    }
    let src = ImageRef::new(sw as u32, sh as u32, src, pt).map_err(resize_err)?;
    let mut dst = Image::new(dw as u32, dh as u32, pt);
    let c = clamp(crop, sw, sh);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter))
        .crop(c.x, c.y, c.w, c.h);
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(resize_err)?;
    Ok(dst.into_vec())
}

pub fn bitmap(
    resizer: &mut Resizer,
    b: &Bitmap,
    crop: RectF,
    dw: usize,
    dh: usize,
    filter: FilterType,
) -> Result<Bitmap, ImageError> {
    let pt = match b.ch {
        1 => PixelType::U8,
        3 => PixelType::U8x3,
        4 => PixelType::U8x4,
        n => return Err(ImageError::Internal(format!("resize: {n} channels"))),
    };
    let data = resize_raw(resizer, &b.data, b.w, b.h, pt, crop, dw, dh, filter)?;
    Ok(Bitmap::new(data, dw, dh, b.ch))
}

/// Resizes the `crop` region (luma coordinates) of YUV planes to luma `dw × dh`, with the output
/// chroma subsampled by `(ox, oy)` (2, 2 for a 4:2:0 JPEG; 1, 1 for RGB conversion). Each
/// output chroma sample is taken from exactly the source region it covers, so chroma stays
/// aligned with luma whatever the input and output subsampling.
#[allow(clippy::too_many_arguments)]
pub fn yuv(
    resizer: &mut Resizer,
    s: &Yuv,
    crop: RectF,
    dw: usize,
    dh: usize,
    ox: usize,
    oy: usize,
    filter: FilterType,
) -> Result<Planes, ImageError> {
    let y = resize_raw(
        resizer,
        s.y(),
        s.yw,
        s.yh,
        PixelType::U8,
        crop,
        dw,
        dh,
        filter,
    )?;
    let (cw, chh) = (dw.div_ceil(ox), dh.div_ceil(oy));
    // Output chroma sample j covers output luma [j*ox, (j+1)*ox), i.e. source luma
    // crop.x + [j*ox, (j+1)*ox) * crop.w / dw, i.e. source chroma that divided by s.sx.
    let ccrop = RectF {
        x: crop.x / s.sx as f64,
        y: crop.y / s.sy as f64,
        w: (cw * ox) as f64 * crop.w / dw as f64 / s.sx as f64,
        h: (chh * oy) as f64 * crop.h / dh as f64 / s.sy as f64,
    };
    let u = resize_raw(
        resizer,
        s.u(),
        s.cw,
        s.chh,
        PixelType::U8,
        ccrop,
        cw,
        chh,
        filter,
    )?;
    let v = resize_raw(
        resizer,
        s.v(),
        s.cw,
        s.chh,
        PixelType::U8,
        ccrop,
        cw,
        chh,
        filter,
    )?;
    Ok(Planes {
        y,
        u,
        v,
        w: dw,
        h: dh,
        cw,
        chh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanczos_table_matches_the_kernel() {
        let mut x = -3.5;
        while x < 3.5 {
            assert!((lanczos3_table(x) - lanczos3_exact(x)).abs() < 2e-6, "{x}");
            x += 0.000_37;
        }
        assert_eq!(lanczos3_table(0.0), 1.0);
    }
}
