//! Content-aware crops, as libvips' `vips_smartcrop` defines them (and sharp exposes as
//! `position: "entropy" | "attention"`): where a `cw × ch` window of an image should sit.
//!
//! Both run on a small RGB rendering of the whole (oriented) input, at most [`ANALYSIS_SIDE`]
//! pixels a side, never on the full decode: the answer is a window position, and a few pixels
//! of precision at that scale are well under a pixel of the output.

use std::sync::LazyLock;

use resizer_core::transform::Position;

use crate::pixels::Bitmap;

/// The longest side of the image the crop is chosen on: a window placed to within 1/256 of the
/// image, and an attention crop costing ~2 ms (at 512, ~8 ms: `cargo bench -p resizer-engine
/// --bench pipeline -- cover`).
pub const ANALYSIS_SIDE: usize = 256;

/// The left and top of the `cw × ch` window of `img` (3 channels) that `strategy` keeps.
/// `Position`s other than the content-aware two keep the centre.
pub fn window(img: &Bitmap, cw: usize, ch: usize, strategy: Position) -> (usize, usize) {
    debug_assert_eq!(img.ch, 3);
    let (cw, ch) = (cw.clamp(1, img.w), ch.clamp(1, img.h));
    match strategy {
        Position::Entropy => entropy(img, cw, ch),
        Position::Attention => attention(img, cw, ch),
        _ => ((img.w - cw) / 2, (img.h - ch) / 2),
    }
}

/// libvips' entropy crop: aiming for eight steps on the axis that needs the most trimming,
/// repeatedly take a slice off each too-long axis, from whichever end has the lower entropy.
fn entropy(img: &Bitmap, cw: usize, ch: usize) -> (usize, usize) {
    let (mut left, mut top, mut w, mut h) = (0, 0, img.w, img.h);
    let step = (img.w - cw).div_ceil(8).max((img.h - ch).div_ceil(8));
    while w > cw || h > ch {
        let sw = (w - cw).min(step);
        if sw > 0 {
            let l = region_entropy(img, left, top, sw, h);
            let r = region_entropy(img, left + w - sw, top, sw, h);
            w -= sw;
            if l < r {
                left += sw;
            }
        }
        let sh = (h - ch).min(step);
        if sh > 0 {
            let t = region_entropy(img, left, top, w, sh);
            let b = region_entropy(img, left, top + h - sh, w, sh);
            h -= sh;
            if t < b {
                top += sh;
            }
        }
    }
    (left, top)
}

/// Shannon entropy (bits) of a region's histogram, each band its own 256 bins, normalised over
/// all of them together (`vips_hist_find` then `vips_hist_entropy`).
fn region_entropy(img: &Bitmap, x: usize, y: usize, w: usize, h: usize) -> f64 {
    let mut hist = [[0u32; 256]; 3];
    for row in img.data.chunks_exact(img.w * 3).skip(y).take(h) {
        for px in row[x * 3..(x + w) * 3].chunks_exact(3) {
            for (band, &v) in px.iter().enumerate() {
                hist[band][usize::from(v)] += 1;
            }
        }
    }
    let total = (w * h * 3) as f64;
    -hist
        .iter()
        .flatten()
        .filter(|&&n| n > 0)
        .map(|&n| {
            let p = f64::from(n) / total;
            p * p.log2()
        })
        .sum::<f64>()
}

/// libvips' attention crop: a saliency map of edges (Sobel on Lab L), skin tones (a in 3..=22,
/// b in 4..=31, L ≥ 15) and saturated colour (LCh C > 60), each mask worth 255 as vips' boolean
/// images are; shrunk to a 32 × 32 grid, blurred by a Gaussian as wide as the window, and the
/// window centred on its maximum (the centre of the grid cell, where libvips takes its
/// corner), kept inside the image.
fn attention(img: &Bitmap, cw: usize, ch: usize) -> (usize, usize) {
    let (w, h) = (img.w, img.h);
    let lab: Vec<[f32; 3]> = img
        .data
        .chunks_exact(3)
        .map(|p| srgb_to_lab(p[0], p[1], p[2]))
        .collect();
    let l = |x: usize, y: usize| lab[y * w + x][0];
    let mut score = vec![0f32; w * h];
    for y in 0..h {
        let (yu, yd) = (y.saturating_sub(1), (y + 1).min(h - 1));
        for x in 0..w {
            let (xl, xr) = (x.saturating_sub(1), (x + 1).min(w - 1));
            // Sobel, edges clamped.
            let gx =
                (l(xr, yu) + 2.0 * l(xr, y) + l(xr, yd)) - (l(xl, yu) + 2.0 * l(xl, y) + l(xl, yd));
            let gy =
                (l(xl, yd) + 2.0 * l(x, yd) + l(xr, yd)) - (l(xl, yu) + 2.0 * l(x, yu) + l(xr, yu));
            let [lv, a, b] = lab[y * w + x];
            let skin = (3.0..=22.0).contains(&a) && (4.0..=31.0).contains(&b) && lv >= 15.0;
            let saturated = (a * a + b * b).sqrt() > 60.0;
            score[y * w + x] = gx.abs()
                + gy.abs()
                + if skin { 255.0 } else { 0.0 }
                + if saturated { 255.0 } else { 0.0 };
        }
    }

    // Shrink to the grid by averaging.
    let (gw, gh) = (w.min(32), h.min(32));
    let mut grid = vec![0f32; gw * gh];
    for gy in 0..gh {
        let (y0, y1) = (gy * h / gh, (gy + 1) * h / gh);
        for gx in 0..gw {
            let (x0, x1) = (gx * w / gw, (gx + 1) * w / gw);
            let sum: f32 = (y0..y1)
                .flat_map(|y| score[y * w + x0..y * w + x1].iter())
                .sum();
            grid[gy * gw + gx] = sum / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    let (hs, vs) = (w as f64 / gw as f64, h as f64 / gh as f64);
    let sigma = ((cw as f64 / hs).powi(2) + (ch as f64 / vs).powi(2)).sqrt() / 6.0;
    let blurred = gaussian_blur(&grid, gw, gh, sigma);
    let best = blurred
        .iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |(bi, bv), (i, &v)| {
                if v > bv { (i, v) } else { (bi, bv) }
            },
        )
        .0;
    let (mx, my) = ((best % gw) as f64 + 0.5, (best / gw) as f64 + 0.5);
    let left = (hs * mx - cw as f64 / 2.0)
        .round()
        .clamp(0.0, (w - cw) as f64);
    let top = (vs * my - ch as f64 / 2.0)
        .round()
        .clamp(0.0, (h - ch) as f64);
    (left as usize, top as usize)
}

/// A separable Gaussian blur with edges clamped (vips_gaussblur extends by copying).
fn gaussian_blur(src: &[f32], w: usize, h: usize, sigma: f64) -> Vec<f32> {
    if sigma < 0.2 {
        return src.to_vec();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i as f64).powi(2) / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let norm: f32 = kernel.iter().sum();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0f32;
                for (k, weight) in kernel.iter().enumerate() {
                    let d = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        ((x as isize + d).clamp(0, w as isize - 1) as usize, y)
                    } else {
                        (x, (y as isize + d).clamp(0, h as isize - 1) as usize)
                    };
                    acc += weight * src[sy * w + sx];
                }
                out[y * w + x] = acc / norm;
            }
        }
        out
    };
    pass(&pass(src, true), false)
}

/// sRGB's transfer function undone, per 8-bit value.
static LINEAR: LazyLock<[f32; 256]> = LazyLock::new(|| {
    std::array::from_fn(|i| {
        let c = i as f32 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    })
});

/// sRGB (8-bit) to CIE Lab, D65 white, as libvips' `sRGB → XYZ → Lab`.
fn srgb_to_lab(r: u8, g: u8, b: u8) -> [f32; 3] {
    let lin = &*LINEAR;
    let (r, g, b) = (
        lin[usize::from(r)],
        lin[usize::from(g)],
        lin[usize::from(b)],
    );
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.950_47;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.088_83;
    let f = |t: f32| {
        if t > 0.008_856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w × h` flat grey image with `paint` applied to it.
    fn image(w: usize, h: usize, paint: impl Fn(usize, usize) -> Option<[u8; 3]>) -> Bitmap {
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&paint(x, y).unwrap_or([128, 128, 128]));
            }
        }
        Bitmap::new(data, w, h, 3)
    }

    /// Pseudo-random noise (a fixed LCG), the most entropy an 8-bit pixel can have.
    fn noise(x: usize, y: usize) -> [u8; 3] {
        let mut s = (x as u32).wrapping_mul(2_654_435_761) ^ (y as u32).wrapping_mul(40_503);
        let mut next = || {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (s >> 16) as u8
        };
        [next(), next(), next()]
    }

    #[test]
    fn entropy_keeps_the_detailed_corner() {
        // 400 × 200, flat but for a noisy 80 × 80 patch near the top right.
        let img = image(400, 200, |x, y| {
            ((300..380).contains(&x) && (10..90).contains(&y)).then(|| noise(x, y))
        });
        let (left, top) = window(&img, 100, 100, Position::Entropy);
        assert!(left <= 300 && left + 100 >= 380, "left {left}");
        assert!(top <= 10 && top + 100 >= 90, "top {top}");
        // Mirrored: the patch bottom left.
        let img = image(400, 200, |x, y| {
            ((20..100).contains(&x) && (110..190).contains(&y)).then(|| noise(x, y))
        });
        let (left, top) = window(&img, 100, 100, Position::Entropy);
        assert!(left <= 20 && left + 100 >= 100, "left {left}");
        assert!(top <= 110 && top + 100 >= 190, "top {top}");
    }

    #[test]
    fn attention_finds_skin_and_saturated_colour() {
        // A skin-toned disc (Lab ≈ 70, 14, 18) on grey, right of centre.
        let img = image(600, 300, |x, y| {
            let (dx, dy) = (x as f64 - 470.0, y as f64 - 150.0);
            (dx * dx + dy * dy < 40.0 * 40.0).then_some([224, 160, 128])
        });
        let [l, a, b] = srgb_to_lab(224, 160, 128);
        assert!(l > 15.0 && (3.0..=22.0).contains(&a) && (4.0..=31.0).contains(&b));
        let (left, top) = window(&img, 200, 300, Position::Attention);
        assert_eq!(top, 0);
        assert!(left <= 430 && left + 200 >= 510, "left {left}");
        // A saturated red square (C ≈ 104) at the far left of a tall image, near the bottom.
        let img = image(200, 800, |x, y| {
            (x < 60 && (600..660).contains(&y)).then_some([230, 20, 20])
        });
        let (left, top) = window(&img, 200, 200, Position::Attention);
        assert_eq!(left, 0);
        assert!(top <= 600 && top + 200 >= 660, "top {top}");
    }

    #[test]
    fn a_flat_image_keeps_a_window_inside_it() {
        let img = image(64, 48, |_, _| None);
        for strategy in [Position::Entropy, Position::Attention, Position::Centre] {
            let (left, top) = window(&img, 30, 48, strategy);
            assert!(left + 30 <= 64 && top == 0, "{strategy:?}");
        }
        // A window as large as the image, and a one-pixel image.
        assert_eq!(window(&img, 64, 48, Position::Attention), (0, 0));
        let dot = image(1, 1, |_, _| None);
        assert_eq!(window(&dot, 1, 1, Position::Entropy), (0, 0));
    }
}
