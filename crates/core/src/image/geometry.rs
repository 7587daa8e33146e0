//! Fit maths (sharp's, with its gravities and a focal point) and orientation (EXIF's, then the
//! caller's rotate and flips).
//!
//! Everything here is pure arithmetic on dimensions; no pixels are touched except by the
//! orientation transforms at the bottom, which run on the (small) output.

use crate::transform::{Anchor, Fit, Rotation, TransformSpec};

use super::ImageError;

/// EXIF orientation (tag 0x0112). The numbers are the EXIF values 1..=8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Orientation {
    /// 1: stored as displayed.
    #[default]
    Normal,
    /// 2: mirrored left-right.
    FlipH,
    /// 3: rotated 180°.
    Rotate180,
    /// 4: mirrored top-bottom.
    FlipV,
    /// 5: mirrored along the main diagonal (transpose).
    Transpose,
    /// 6: stored rotated 90° counter-clockwise; displayed by rotating 90° clockwise.
    Rotate90,
    /// 7: mirrored along the anti-diagonal (transverse).
    Transverse,
    /// 8: stored rotated 90° clockwise; displayed by rotating 270° clockwise.
    Rotate270,
}

impl Orientation {
    pub const ALL: [Orientation; 8] = [
        Orientation::Normal,
        Orientation::FlipH,
        Orientation::Rotate180,
        Orientation::FlipV,
        Orientation::Transpose,
        Orientation::Rotate90,
        Orientation::Transverse,
        Orientation::Rotate270,
    ];

    /// From the EXIF value; anything outside 1..=8 means "as stored".
    pub fn from_exif(value: u16) -> Self {
        match value {
            2 => Orientation::FlipH,
            3 => Orientation::Rotate180,
            4 => Orientation::FlipV,
            5 => Orientation::Transpose,
            6 => Orientation::Rotate90,
            7 => Orientation::Transverse,
            8 => Orientation::Rotate270,
            _ => Orientation::Normal,
        }
    }

    pub fn exif_value(self) -> u16 {
        match self {
            Orientation::Normal => 1,
            Orientation::FlipH => 2,
            Orientation::Rotate180 => 3,
            Orientation::FlipV => 4,
            Orientation::Transpose => 5,
            Orientation::Rotate90 => 6,
            Orientation::Transverse => 7,
            Orientation::Rotate270 => 8,
        }
    }

    /// Whether displaying swaps width and height.
    pub fn swaps_axes(self) -> bool {
        matches!(
            self,
            Orientation::Transpose
                | Orientation::Rotate90
                | Orientation::Transverse
                | Orientation::Rotate270
        )
    }

    /// The orientation that displays in one step what displaying with `self` and then turning
    /// the result by `next` displays: EXIF's orientation, then the caller's rotate and flips.
    pub fn then(self, next: Orientation) -> Orientation {
        // The eight are the symmetries of a rectangle, and a 2 × 3 one tells them all apart.
        let (sw, sh) = (2, 3);
        let (mw, mh) = if self.swaps_axes() {
            (sh, sw)
        } else {
            (sw, sh)
        };
        let (fw, fh) = if next.swaps_axes() {
            (mh, mw)
        } else {
            (mw, mh)
        };
        let composed = |x, y| {
            let (mx, my) = next.source_of(x, y, fw, fh);
            self.source_of(mx, my, mw, mh)
        };
        Orientation::ALL
            .into_iter()
            .find(|o| {
                o.swaps_axes() == (self.swaps_axes() != next.swaps_axes())
                    && (0..fh).all(|y| (0..fw).all(|x| o.source_of(x, y, fw, fh) == composed(x, y)))
            })
            .expect("the symmetries of a rectangle are closed under composition")
    }

    /// The turn a spec asks for after EXIF orientation: `rotate` clockwise, then `flip` (top to
    /// bottom), then `flop` (left to right), as sharp orders them.
    pub fn requested(spec: &TransformSpec) -> Orientation {
        let rotated = match spec.rotate() {
            Rotation::None => Orientation::Normal,
            Rotation::Cw90 => Orientation::Rotate90,
            Rotation::Cw180 => Orientation::Rotate180,
            Rotation::Cw270 => Orientation::Rotate270,
        };
        let flipped = if spec.flip() {
            rotated.then(Orientation::FlipV)
        } else {
            rotated
        };
        if spec.flop() {
            flipped.then(Orientation::FlipH)
        } else {
            flipped
        }
    }

    /// Where the displayed pixel `(x, y)` of a `dw × dh` displayed image is stored.
    #[inline]
    fn source_of(self, x: usize, y: usize, dw: usize, dh: usize) -> (usize, usize) {
        match self {
            Orientation::Normal => (x, y),
            Orientation::FlipH => (dw - 1 - x, y),
            Orientation::Rotate180 => (dw - 1 - x, dh - 1 - y),
            Orientation::FlipV => (x, dh - 1 - y),
            Orientation::Transpose => (y, x),
            Orientation::Rotate90 => (y, dw - 1 - x),
            Orientation::Transverse => (dh - 1 - y, dw - 1 - x),
            Orientation::Rotate270 => (dh - 1 - y, x),
        }
    }

    /// Maps a rectangle given in displayed coordinates (of a displayed image `dw × dh`) to
    /// stored coordinates: `(left, top, width, height)`.
    pub fn rect_to_stored(self, r: RectF, dw: f64, dh: f64) -> RectF {
        let RectF { x, y, w, h } = r;
        match self {
            Orientation::Normal => r,
            Orientation::FlipH => RectF {
                x: dw - x - w,
                y,
                w,
                h,
            },
            Orientation::Rotate180 => RectF {
                x: dw - x - w,
                y: dh - y - h,
                w,
                h,
            },
            Orientation::FlipV => RectF {
                x,
                y: dh - y - h,
                w,
                h,
            },
            Orientation::Transpose => RectF {
                x: y,
                y: x,
                w: h,
                h: w,
            },
            Orientation::Rotate90 => RectF {
                x: y,
                y: dw - x - w,
                w: h,
                h: w,
            },
            Orientation::Transverse => RectF {
                x: dh - y - h,
                y: dw - x - w,
                w: h,
                h: w,
            },
            Orientation::Rotate270 => RectF {
                x: dh - y - h,
                y: x,
                w: h,
                h: w,
            },
        }
    }

    /// Applies the orientation to an interleaved `w × h` buffer of `channels` bytes per pixel
    /// (stored frame), returning the displayed buffer and its dimensions.
    pub fn apply(
        self,
        src: Vec<u8>,
        w: usize,
        h: usize,
        channels: usize,
    ) -> (Vec<u8>, usize, usize) {
        if self == Orientation::Normal {
            return (src, w, h);
        }
        let (dw, dh) = if self.swaps_axes() { (h, w) } else { (w, h) };
        let mut dst = vec![0u8; src.len()];
        match channels {
            1 => self.remap::<1>(&src, &mut dst, w, dw, dh),
            2 => self.remap::<2>(&src, &mut dst, w, dw, dh),
            3 => self.remap::<3>(&src, &mut dst, w, dw, dh),
            _ => self.remap::<4>(&src, &mut dst, w, dw, dh),
        }
        (dst, dw, dh)
    }

    fn remap<const C: usize>(self, src: &[u8], dst: &mut [u8], sw: usize, dw: usize, dh: usize) {
        for (y, row) in dst.chunks_exact_mut(dw * C).enumerate() {
            for (x, px) in row.chunks_exact_mut(C).enumerate() {
                let (sx, sy) = self.source_of(x, y, dw, dh);
                let i = (sy * sw + sx) * C;
                px.copy_from_slice(&src[i..i + C]);
            }
        }
    }
}

/// A rectangle in floating-point pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RectF {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// What the output looks like, in the displayed (oriented) frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The region of the (oriented) input that is resized: the whole image, or the centre crop
    /// of `cover`.
    pub src: RectF,
    /// The size the region is resized to.
    pub resize_w: u32,
    pub resize_h: u32,
    /// The final canvas: equal to the resize size, except for `contain`, which letterboxes the
    /// resized image into it at `(embed_x, embed_y)`.
    pub canvas_w: u32,
    pub canvas_h: u32,
    pub embed_x: u32,
    pub embed_y: u32,
}

impl Plan {
    /// The smaller of the horizontal and vertical reduction factors (> 1 when shrinking).
    pub fn min_shrink(&self) -> f64 {
        (self.src.w / f64::from(self.resize_w)).min(self.src.h / f64::from(self.resize_h))
    }

    pub fn is_letterboxed(&self) -> bool {
        self.canvas_w != self.resize_w || self.canvas_h != self.resize_h
    }

    /// Whether only part of the input is kept (`cover` on an input of another aspect).
    pub fn is_cropped(&self, w: u32, h: u32) -> bool {
        self.src.w < f64::from(w) || self.src.h < f64::from(h)
    }

    /// Moves the crop window to `(x, y)` (input pixels of the displayed frame), kept inside
    /// the `w × h` input: where a content-aware crop decided it should be.
    pub fn move_crop(&mut self, x: f64, y: f64, w: u32, h: u32) {
        self.src.x = x.clamp(0.0, (f64::from(w) - self.src.w).max(0.0));
        self.src.y = y.clamp(0.0, (f64::from(h) - self.src.h).max(0.0));
    }
}

/// The offset of a `part` inside a `whole` along one axis, by a gravity's anchor. `Middle`
/// rounds up for a crop (sharp's `(in - out + 1) / 2`) and down for a letterbox (its
/// `(out - in) / 2`).
fn anchored(anchor: Anchor, slack: u32, round_up: bool) -> u32 {
    match anchor {
        Anchor::Start => 0,
        Anchor::Middle if round_up => slack.div_ceil(2),
        Anchor::Middle => slack / 2,
        Anchor::End => slack,
    }
}

/// The offset of a `part`-pixel crop of a `whole`-pixel axis centred on `fraction` of it, kept
/// inside.
fn focal(fraction: f64, whole: u32, part: u32) -> u32 {
    let left = (fraction * f64::from(whole) - f64::from(part) / 2.0).round();
    left.clamp(0.0, f64::from(whole - part)) as u32
}

/// Computes the output geometry for a displayed (already oriented) input of `w × h`, exactly as
/// sharp 0.3x does (`ResolveShrink`, libvips' rounding of the resized size, then crop or embed
/// by the spec's gravity or focal point; a content-aware crop starts centred and is moved once
/// the pixels are known, see [`Plan::move_crop`]). Fails with `DimensionsTooLarge` when a side
/// would exceed `max_side`.
pub fn plan(w: u32, h: u32, spec: &TransformSpec, max_side: u32) -> Result<Plan, ImageError> {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let tw = spec.width();
    let th = spec.height();
    let fit = spec.fit();

    let (mut hshrink, mut vshrink) = match (tw, th) {
        (Some(tw), Some(th)) => {
            let hs = wf / f64::from(tw);
            let vs = hf / f64::from(th);
            match fit {
                // sharp's CROP and MIN canvases: the smaller shrink on both axes.
                Fit::Cover | Fit::Outside => {
                    let s = hs.min(vs);
                    (s, s)
                }
                // EMBED and MAX: the larger shrink.
                Fit::Contain | Fit::Inside => {
                    let s = hs.max(vs);
                    (s, s)
                }
                Fit::Fill => (hs, vs),
            }
        }
        (Some(tw), None) => {
            let hs = wf / f64::from(tw);
            (hs, if fit == Fit::Fill { 1.0 } else { hs })
        }
        (None, Some(th)) => {
            let vs = hf / f64::from(th);
            (if fit == Fit::Fill { 1.0 } else { vs }, vs)
        }
        (None, None) => (1.0, 1.0),
    };
    if !spec.enlarge() {
        hshrink = hshrink.max(1.0);
        vshrink = vshrink.max(1.0);
    }
    // Never shrink an axis to nothing.
    hshrink = hshrink.min(wf);
    vshrink = vshrink.min(hf);

    // libvips rounds the resized size to the nearest integer (at least 1).
    let rw = (wf / hshrink).round().max(1.0);
    let rh = (hf / vshrink).round().max(1.0);
    if fit != Fit::Cover {
        check_side(rw, rh, max_side)?;
    } else if rw > f64::from(u32::MAX / 2) || rh > f64::from(u32::MAX / 2) {
        return Err(check_side(rw, rh, max_side).unwrap_err());
    }
    let (rw, rh) = (rw as u32, rh as u32);

    let full = RectF {
        x: 0.0,
        y: 0.0,
        w: wf,
        h: hf,
    };
    let mut plan = Plan {
        src: full,
        resize_w: rw,
        resize_h: rh,
        canvas_w: rw,
        canvas_h: rh,
        embed_x: 0,
        embed_y: 0,
    };
    match fit {
        Fit::Cover => {
            // Crop the resized image to the box (never beyond the image), placed like sharp
            // (centred: left = (in - out + 1) / 2 in integer pixels of the resized image). We
            // crop the source instead, which is the same region without resizing what is
            // thrown away.
            let cw = tw.map_or(rw, |t| t.min(rw));
            let ch = th.map_or(rh, |t| t.min(rh));
            if cw != rw || ch != rh {
                let (left, top) = match spec.focal_point() {
                    Some(p) => (focal(p.fx(), rw, cw), focal(p.fy(), rh, ch)),
                    None => {
                        let (ax, ay) = spec.position().placement();
                        (anchored(ax, rw - cw, true), anchored(ay, rh - ch, true))
                    }
                };
                let sx = wf / f64::from(rw);
                let sy = hf / f64::from(rh);
                plan.src = RectF {
                    x: f64::from(left) * sx,
                    y: f64::from(top) * sy,
                    w: f64::from(cw) * sx,
                    h: f64::from(ch) * sy,
                };
                plan.resize_w = cw;
                plan.resize_h = ch;
                plan.canvas_w = cw;
                plan.canvas_h = ch;
            }
            check_side(f64::from(cw), f64::from(ch), max_side)?;
        }
        Fit::Contain => {
            let cw = tw.map_or(rw, |t| t.max(rw));
            let ch = th.map_or(rh, |t| t.max(rh));
            check_side(f64::from(cw), f64::from(ch), max_side)?;
            plan.canvas_w = cw;
            plan.canvas_h = ch;
            let (ax, ay) = spec.position().placement();
            plan.embed_x = anchored(ax, cw - rw, false);
            plan.embed_y = anchored(ay, ch - rh, false);
        }
        Fit::Fill | Fit::Inside | Fit::Outside => {}
    }
    Ok(plan)
}

fn check_side(w: f64, h: f64, max_side: u32) -> Result<(), ImageError> {
    let max = f64::from(max_side);
    if w > max || h > max {
        return Err(ImageError::DimensionsTooLarge(format!(
            "the output would be {w}x{h} pixels, over the limit of {max_side} per side"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(q: &[(&str, &str)]) -> TransformSpec {
        TransformSpec::from_pairs(q.iter().copied()).unwrap()
    }

    fn dims(w: u32, h: u32, q: &[(&str, &str)]) -> (u32, u32) {
        let p = plan(w, h, &spec(q), 8192).unwrap();
        (p.canvas_w, p.canvas_h)
    }

    #[test]
    fn inside_is_the_default_and_keeps_aspect() {
        assert_eq!(dims(1000, 667, &[("width", "300")]), (300, 200));
        assert_eq!(dims(1000, 667, &[("height", "100")]), (150, 100));
        assert_eq!(
            dims(1000, 667, &[("width", "300"), ("height", "300")]),
            (300, 200)
        );
        assert_eq!(
            dims(667, 1000, &[("width", "300"), ("height", "300")]),
            (200, 300)
        );
    }

    #[test]
    fn never_enlarges_unless_asked() {
        assert_eq!(dims(200, 100, &[("width", "400")]), (200, 100));
        assert_eq!(
            dims(200, 100, &[("width", "400"), ("enlarge", "true")]),
            (400, 200)
        );
        // cover on a small image: the resize is skipped and the crop is limited to the image.
        assert_eq!(
            dims(
                200,
                100,
                &[("width", "300"), ("height", "300"), ("fit", "cover")]
            ),
            (200, 100)
        );
        assert_eq!(
            dims(
                200,
                100,
                &[
                    ("width", "300"),
                    ("height", "300"),
                    ("fit", "cover"),
                    ("enlarge", "true")
                ]
            ),
            (300, 300)
        );
    }

    #[test]
    fn cover_crops_the_centre() {
        let p = plan(
            1000,
            500,
            &spec(&[("width", "100"), ("height", "100"), ("fit", "cover")]),
            8192,
        )
        .unwrap();
        assert_eq!((p.canvas_w, p.canvas_h), (100, 100));
        assert_eq!((p.resize_w, p.resize_h), (100, 100));
        // Resized to 200x100, crop left = (200 - 100 + 1) / 2 = 50 → 250 source pixels.
        assert_eq!(
            p.src,
            RectF {
                x: 250.0,
                y: 0.0,
                w: 500.0,
                h: 500.0
            }
        );
        // One dimension: nothing to crop.
        assert_eq!(
            dims(1000, 500, &[("width", "100"), ("fit", "cover")]),
            (100, 50)
        );
        // Odd difference rounds the offset up, as sharp's (in - out + 1) / 2.
        let p = plan(
            101,
            100,
            &spec(&[("width", "100"), ("height", "100"), ("fit", "cover")]),
            8192,
        )
        .unwrap();
        assert_eq!(p.src.x, 1.0);
    }

    #[test]
    fn cover_crops_where_the_gravity_or_the_focal_point_says() {
        let at = |q: &[(&str, &str)]| {
            let mut all = vec![("width", "100"), ("height", "100"), ("fit", "cover")];
            all.extend_from_slice(q);
            let p = plan(1000, 500, &spec(&all), 8192).unwrap();
            assert_eq!((p.src.w, p.src.h), (500.0, 500.0), "{q:?}");
            (p.src.x, p.src.y)
        };
        // Resized to 200 × 100: the 100 × 100 window slides along x only (source px = 5 ×).
        assert_eq!(at(&[("position", "west")]), (0.0, 0.0));
        assert_eq!(at(&[("position", "northwest")]), (0.0, 0.0));
        assert_eq!(at(&[("position", "north")]), (250.0, 0.0));
        assert_eq!(at(&[("position", "east")]), (500.0, 0.0));
        assert_eq!(at(&[("position", "southeast")]), (500.0, 0.0));
        // The focal point centres the window (x = 0.7 × 200 - 50 = 90 → 450 px), kept inside.
        assert_eq!(at(&[("fx", "0.7"), ("fy", "0.5")]), (450.0, 0.0));
        assert_eq!(at(&[("fx", "0.99"), ("fy", "0")]), (500.0, 0.0));
        assert_eq!(at(&[("fx", "0"), ("fy", "1")]), (0.0, 0.0));
        // A content-aware crop starts centred; the engine moves it, kept inside.
        let mut p = plan(
            1000,
            500,
            &spec(&[
                ("width", "100"),
                ("height", "100"),
                ("fit", "cover"),
                ("position", "entropy"),
            ]),
            8192,
        )
        .unwrap();
        assert_eq!(p.src.x, 250.0);
        assert!(p.is_cropped(1000, 500));
        p.move_crop(900.0, -3.0, 1000, 500);
        assert_eq!((p.src.x, p.src.y), (500.0, 0.0));
        // Vertical slack: a tall input.
        let p = plan(
            500,
            1000,
            &spec(&[
                ("width", "100"),
                ("height", "100"),
                ("fit", "cover"),
                ("position", "south"),
            ]),
            8192,
        )
        .unwrap();
        assert_eq!((p.src.x, p.src.y), (0.0, 500.0));
    }

    #[test]
    fn contain_places_the_image_by_its_gravity() {
        let at = |position: &str| {
            let p = plan(
                1000,
                500,
                &spec(&[
                    ("width", "101"),
                    ("height", "101"),
                    ("fit", "contain"),
                    ("position", position),
                ]),
                8192,
            )
            .unwrap();
            assert_eq!((p.resize_w, p.resize_h), (101, 51));
            (p.embed_x, p.embed_y)
        };
        assert_eq!(at("centre"), (0, 25));
        assert_eq!(at("north"), (0, 0));
        assert_eq!(at("south"), (0, 50));
        assert_eq!(at("west"), (0, 25));
    }

    #[test]
    fn orientations_compose() {
        use Orientation::*;
        assert_eq!(Rotate90.then(Rotate90), Rotate180);
        assert_eq!(Rotate90.then(Rotate270), Normal);
        assert_eq!(Rotate270.then(Rotate180), Rotate90);
        assert_eq!(FlipH.then(FlipH), Normal);
        assert_eq!(FlipH.then(FlipV), Rotate180);
        // Applying a then b to pixels is applying a.then(b).
        let src: Vec<u8> = (0..12).collect();
        for a in Orientation::ALL {
            assert_eq!(a.then(Normal), a);
            assert_eq!(Normal.then(a), a);
            for b in Orientation::ALL {
                let (mid, mw, mh) = a.apply(src.clone(), 4, 3, 1);
                let two_steps = b.apply(mid, mw, mh, 1);
                assert_eq!(
                    a.then(b).apply(src.clone(), 4, 3, 1),
                    two_steps,
                    "{a:?} {b:?}"
                );
            }
        }
        let turn = |q: &[(&str, &str)]| {
            let mut all = vec![("width", "10")];
            all.extend_from_slice(q);
            Orientation::requested(&spec(&all))
        };
        assert_eq!(turn(&[]), Normal);
        assert_eq!(turn(&[("rotate", "90")]), Rotate90);
        assert_eq!(turn(&[("flip", "true")]), FlipV);
        assert_eq!(turn(&[("flop", "true")]), FlipH);
        assert_eq!(turn(&[("flip", "true"), ("flop", "true")]), Rotate180);
        // [a b / c d] turned clockwise is [c a / d b]; mirrored top to bottom, [d b / c a]:
        // the transverse. Mirrored left to right instead, [a c / b d]: the transpose.
        assert_eq!(turn(&[("rotate", "90"), ("flip", "true")]), Transverse);
        assert_eq!(turn(&[("rotate", "90"), ("flop", "true")]), Transpose);
    }

    #[test]
    fn contain_letterboxes_into_the_box() {
        let p = plan(
            1000,
            500,
            &spec(&[("width", "100"), ("height", "100"), ("fit", "contain")]),
            8192,
        )
        .unwrap();
        assert_eq!((p.resize_w, p.resize_h), (100, 50));
        assert_eq!((p.canvas_w, p.canvas_h), (100, 100));
        assert_eq!((p.embed_x, p.embed_y), (0, 25));
        assert!(p.is_letterboxed());
        // A small image is not enlarged but still placed in the full box, centred.
        let p = plan(
            50,
            41,
            &spec(&[("width", "100"), ("height", "100"), ("fit", "contain")]),
            8192,
        )
        .unwrap();
        assert_eq!(
            (p.resize_w, p.resize_h, p.canvas_w, p.canvas_h),
            (50, 41, 100, 100)
        );
        assert_eq!((p.embed_x, p.embed_y), (25, 29));
        // Only a width: the box is as wide as asked and as tall as the image.
        assert_eq!(
            dims(50, 40, &[("width", "100"), ("fit", "contain")]),
            (100, 40)
        );
        assert_eq!(
            dims(1000, 500, &[("width", "100"), ("fit", "contain")]),
            (100, 50)
        );
    }

    #[test]
    fn fill_ignores_aspect() {
        assert_eq!(
            dims(
                1000,
                500,
                &[("width", "100"), ("height", "100"), ("fit", "fill")]
            ),
            (100, 100)
        );
        // Only one side given: the other is left alone, like sharp.
        assert_eq!(
            dims(1000, 500, &[("width", "100"), ("fit", "fill")]),
            (100, 500)
        );
        assert_eq!(
            dims(1000, 500, &[("height", "100"), ("fit", "fill")]),
            (1000, 100)
        );
        // Without enlargement each axis is clamped separately.
        assert_eq!(
            dims(
                1000,
                50,
                &[("width", "100"), ("height", "100"), ("fit", "fill")]
            ),
            (100, 50)
        );
    }

    #[test]
    fn outside_covers_the_box_without_cropping() {
        assert_eq!(
            dims(
                1000,
                500,
                &[("width", "100"), ("height", "100"), ("fit", "outside")]
            ),
            (200, 100)
        );
        assert_eq!(
            dims(
                500,
                1000,
                &[("width", "100"), ("height", "100"), ("fit", "outside")]
            ),
            (100, 200)
        );
        assert_eq!(
            dims(1000, 500, &[("width", "100"), ("fit", "outside")]),
            (100, 50)
        );
    }

    #[test]
    fn rounding_and_minimum_sizes() {
        // 667 / 3.333… = 200.1 → 200; 1000x1 to width 10 keeps one row.
        assert_eq!(dims(1000, 667, &[("width", "300")]), (300, 200));
        assert_eq!(dims(1000, 1, &[("width", "10")]), (10, 1));
        assert_eq!(dims(1, 1000, &[("width", "1"), ("height", "10")]), (1, 10));
        assert_eq!(dims(3, 2, &[("width", "2")]), (2, 1));
    }

    #[test]
    fn output_side_limit() {
        let s = spec(&[
            ("width", "8192"),
            ("height", "8192"),
            ("fit", "outside"),
            ("enlarge", "true"),
        ]);
        let err = plan(100, 1, &s, 8192).unwrap_err();
        assert_eq!(err.code(), "dimensions_too_large");
        let s = spec(&[("width", "100"), ("fit", "fill")]);
        assert_eq!(
            plan(200, 16000, &s, 8192).unwrap_err().code(),
            "dimensions_too_large"
        );
        assert!(plan(200, 8192, &s, 8192).is_ok());
        // cover only checks what is left after the crop.
        let s = spec(&[
            ("width", "8192"),
            ("height", "8192"),
            ("fit", "cover"),
            ("enlarge", "true"),
        ]);
        let p = plan(1, 100, &s, 8192).unwrap();
        assert_eq!((p.canvas_w, p.canvas_h), (8192, 8192));
    }

    #[test]
    fn orientation_round_trips() {
        // A 3x2 image with distinct pixels; applying each orientation then checking a corner.
        let src: Vec<u8> = (0..6).collect();
        for o in Orientation::ALL {
            let (d, dw, dh) = o.apply(src.clone(), 3, 2, 1);
            if o.swaps_axes() {
                assert_eq!((dw, dh), (2, 3));
            } else {
                assert_eq!((dw, dh), (3, 2));
            }
            for y in 0..dh {
                for x in 0..dw {
                    let (sx, sy) = o.source_of(x, y, dw, dh);
                    assert_eq!(d[y * dw + x], src[sy * 3 + sx], "{o:?}");
                }
            }
        }
        // Rotate90 (EXIF 6): the stored left column becomes the displayed top row, reversed.
        let (d, _, _) = Orientation::Rotate90.apply(src.clone(), 3, 2, 1);
        assert_eq!(d, vec![3, 0, 4, 1, 5, 2]);
        let (d, _, _) = Orientation::Rotate270.apply(src, 3, 2, 1);
        assert_eq!(d, vec![2, 5, 1, 4, 0, 3]);
    }

    #[test]
    fn rect_mapping_agrees_with_pixel_mapping() {
        // The stored rectangle of a displayed rectangle must contain exactly the source pixels.
        let (sw, sh) = (7usize, 5usize);
        for o in Orientation::ALL {
            let (dw, dh) = if o.swaps_axes() { (sh, sw) } else { (sw, sh) };
            let r = RectF {
                x: 1.0,
                y: 2.0,
                w: 2.0,
                h: 1.0,
            };
            let s = o.rect_to_stored(r, dw as f64, dh as f64);
            for y in 2..3 {
                for x in 1..3 {
                    let (px, py) = o.source_of(x, y, dw, dh);
                    let (px, py) = (px as f64 + 0.5, py as f64 + 0.5);
                    assert!(
                        px > s.x && px < s.x + s.w && py > s.y && py < s.y + s.h,
                        "{o:?}"
                    );
                }
            }
        }
    }
}
