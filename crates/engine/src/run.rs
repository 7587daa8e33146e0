//! The conversion itself: probe → plan → decode (shrink-on-load) → resize → colour → orient →
//! alpha/letterbox → encode.

use fast_image_resize::{FilterType, Resizer};

use resizer_core::image::geometry::{self, Orientation, Plan, RectF};
use resizer_core::image::{ImageError, Limits, header};
use resizer_core::transform::{Format, Position, TransformSpec};

use crate::pixels::{Bitmap, Pixels};
use crate::{Output, color, decode, encode, resize, smartcrop};

/// Knobs the benchmarks turn; `process` uses the defaults.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Reduction left for the filter after JPEG shrink-on-load (libvips: 2.0).
    pub shrink_residual: f64,
    /// Decode JPEG to YUV planes when possible (off: always decode to RGB).
    pub yuv: bool,
    /// The resampling filter.
    pub filter: FilterType,
    /// rav1e speed for AVIF output.
    pub avif_speed: u8,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            shrink_residual: decode::SHRINK_ON_LOAD_RESIDUAL,
            yuv: true,
            filter: resize::default_filter(),
            avif_speed: encode::AVIF_SPEED,
        }
    }
}

fn displayed(w: u32, h: u32, o: Orientation) -> (u32, u32) {
    if o.swaps_axes() { (h, w) } else { (w, h) }
}

pub fn run_tuned(
    bytes: &[u8],
    spec: &TransformSpec,
    limits: &Limits,
    tuning: &Tuning,
) -> Result<Output, ImageError> {
    let info = header::probe(bytes, limits)?;

    // The caller's rotate and flips turn the image after its EXIF orientation: one
    // orientation does both.
    let turn = Orientation::requested(spec);
    // The output format, once the canvas (and, for `format=auto`, the transparency) is known:
    // a format whose limit the canvas exceeds is passed over by auto, refused otherwise.
    let format_for = |plan: &Plan, transparent: bool| {
        let fits = |f| limits.check_output(plan.canvas_w, plan.canvas_h, f, spec.lossless());
        let format = spec.output_format(info.format, transparent, |f| fits(f).is_ok());
        fits(format).map(|()| format)
    };

    // Decode, knowing the plan first for JPEG so that it can shrink on load.
    let (decoded, mut plan, (sw, sh), out_format) = if info.format == Format::Jpeg {
        let (hdr, exif) = decode::jpeg_meta(bytes)?;
        let orientation = exif.then(turn);
        let (dw, dh) = displayed(info.width, info.height, orientation);
        let plan = geometry::plan(dw, dh, spec, limits.max_output_side)?;
        let out_format = format_for(&plan, false)?;
        let shrink = decode::jpeg_shrink_factor(plan.min_shrink(), tuning.shrink_residual);
        let d = decode::jpeg(bytes, hdr, orientation, shrink, tuning.yuv)?;
        (d, plan, (info.width, info.height), out_format)
    } else {
        // The orientation of these formats is known only once decoded: refuse before decoding
        // what is too large either way, and the exact size right after.
        limits.check_output_of(&info, spec)?;
        let mut d = decode::other(bytes, &info)?;
        d.orientation = d.orientation.then(turn);
        let (w, h) = (d.pixels.width() as u32, d.pixels.height() as u32);
        let (dw, dh) = displayed(w, h, d.orientation);
        let plan = geometry::plan(dw, dh, spec, limits.max_output_side)?;
        // Only `format=auto` asks, and the scan reads every pixel of an opaque RGBA image.
        let transparent = spec.auto_format().is_some() && is_transparent(&d.pixels);
        let out_format = format_for(&plan, transparent)?;
        (d, plan, (w, h), out_format)
    };

    // The plan is in the displayed frame and original pixels; the decoded pixels are stored
    // (unrotated) and maybe shrunk on load.
    let o = decoded.orientation;
    let (dw, dh) = displayed(sw, sh, o);
    let mut resizer = Resizer::new();
    if spec.position().is_content_aware() && plan.is_cropped(dw, dh) {
        let (x, y) = content_aware_origin(
            &mut resizer,
            &decoded.pixels,
            o,
            &plan,
            (dw, dh),
            spec.position(),
        )?;
        plan.move_crop(x, y, dw, dh);
    }
    let stored = o.rect_to_stored(plan.src, f64::from(dw), f64::from(dh));
    let rx = decoded.pixels.width() as f64 / f64::from(sw);
    let ry = decoded.pixels.height() as f64 / f64::from(sh);
    let crop = RectF {
        x: stored.x * rx,
        y: stored.y * ry,
        w: stored.w * rx,
        h: stored.h * ry,
    };
    let (tw, th) = displayed(plan.resize_w, plan.resize_h, o);
    let (tw, th) = (tw as usize, th as usize);

    let bg = spec.background().0;
    let alpha_out = matches!(out_format, Format::Png | Format::Webp | Format::Avif);
    let quality = spec.quality().get();
    let icc = decoded.icc.filter(|p| color::needs_conversion(p));

    let bitmap = match decoded.pixels {
        // Fast path: JPEG in, JPEG out, no colour management, no letterbox: stay in YUV.
        Pixels::Yuv(y) if out_format == Format::Jpeg && icc.is_none() && !plan.is_letterboxed() => {
            let p = resize::yuv(&mut resizer, &y, crop, tw, th, 2, 2, tuning.filter)?;
            drop(y);
            let (yp, w, h) = o.apply(p.y, p.w, p.h, 1);
            let (up, cw, chh) = o.apply(p.u, p.cw, p.chh, 1);
            let (vp, _, _) = o.apply(p.v, p.cw, p.chh, 1);
            let planes = crate::pixels::Planes {
                y: yp,
                u: up,
                v: vp,
                w,
                h,
                cw,
                chh,
            };
            let bytes = encode::jpeg_from_planes(&planes, quality)?;
            return Ok(output(bytes, Format::Jpeg, w, h, info));
        }
        Pixels::Yuv(y) => {
            let p = resize::yuv(&mut resizer, &y, crop, tw, th, 1, 1, tuning.filter)?;
            drop(y);
            color::yuv_to_rgb(&p.y, &p.u, &p.v, p.w, p.h)
        }
        Pixels::Bitmap(mut b) => {
            if b.ch == 4 && !alpha_out {
                // Flattening commutes with premultiplied resampling; do it first, on 3 channels.
                b = color::flatten(&b, bg);
            }
            resize::bitmap(&mut resizer, &b, crop, tw, th, tuning.filter)?
        }
    };

    let mut b = match &icc {
        Some(p) => color::icc_to_srgb(bitmap, p)?,
        None => bitmap,
    };
    let (data, w, h) = o.apply(std::mem::take(&mut b.data), b.w, b.h, b.ch);
    let mut b = Bitmap::new(data, w, h, b.ch);

    if plan.is_letterboxed() {
        let fill: Vec<u8> = if b.ch == 4 {
            // Alpha in, alpha-capable out: a transparent letterbox.
            vec![0, 0, 0, 0]
        } else if b.ch == 1 && bg[0] == bg[1] && bg[1] == bg[2] {
            vec![bg[0]]
        } else {
            b = color::to_channels(b, 3);
            bg.to_vec()
        };
        b = color::embed(
            &b,
            plan.canvas_w as usize,
            plan.canvas_h as usize,
            plan.embed_x as usize,
            plan.embed_y as usize,
            &fill,
        );
    }

    let (w, h) = (b.w, b.h);
    let bytes = match out_format {
        Format::Jpeg => {
            if b.ch == 4 {
                b = color::flatten(&b, bg);
            }
            encode::jpeg(&b, quality)?
        }
        Format::Png => encode::png(&b)?,
        Format::Webp => encode::webp(&color::to_channels_min3(b), quality, spec.lossless())?,
        Format::Avif => encode::avif(&color::to_channels_min3(b), quality, tuning.avif_speed)?,
        Format::Gif => {
            return Err(ImageError::InvalidParameter(
                "GIF output is not supported".into(),
            ));
        }
    };
    Ok(output(bytes, out_format, w, h, info))
}

/// Whether any pixel is less than opaque (an RGBA image whose alpha is all 255 needs none).
fn is_transparent(pixels: &Pixels) -> bool {
    match pixels {
        Pixels::Bitmap(b) if b.ch == 4 => b.data.chunks_exact(4).any(|p| p[3] != 255),
        _ => false,
    }
}

/// Where a content-aware crop puts the plan's window (its left and top, in input pixels of the
/// displayed frame): chosen on the whole image rendered small, at the scale of the resize, at
/// most [`smartcrop::ANALYSIS_SIDE`] a side, in RGB and turned as displayed.
fn content_aware_origin(
    resizer: &mut Resizer,
    pixels: &Pixels,
    o: Orientation,
    plan: &Plan,
    (dw, dh): (u32, u32),
    strategy: Position,
) -> Result<(f64, f64), ImageError> {
    let scale = (f64::from(plan.resize_w) / plan.src.w)
        .min(smartcrop::ANALYSIS_SIDE as f64 / f64::from(dw.max(dh)));
    let aw = ((f64::from(dw) * scale).round() as usize).max(1);
    let ah = ((f64::from(dh) * scale).round() as usize).max(1);
    let (tw, th) = displayed(aw as u32, ah as u32, o);
    let (tw, th) = (tw as usize, th as usize);
    let whole = |w: usize, h: usize| RectF {
        x: 0.0,
        y: 0.0,
        w: w as f64,
        h: h as f64,
    };
    let filter = FilterType::Bilinear;
    let rgb = match pixels {
        Pixels::Yuv(y) => {
            let p = resize::yuv(resizer, y, whole(y.w, y.h), tw, th, 1, 1, filter)?;
            color::yuv_to_rgb(&p.y, &p.u, &p.v, p.w, p.h)
        }
        Pixels::Bitmap(b) => {
            let small = resize::bitmap(resizer, b, whole(b.w, b.h), tw, th, filter)?;
            color::to_channels(small, 3)
        }
    };
    let (data, w, h) = o.apply(rgb.data, rgb.w, rgb.h, 3);
    let (sx, sy) = (w as f64 / f64::from(dw), h as f64 / f64::from(dh));
    let cw = (plan.src.w * sx).round() as usize;
    let ch = (plan.src.h * sy).round() as usize;
    let (left, top) = smartcrop::window(&Bitmap::new(data, w, h, 3), cw, ch, strategy);
    Ok((left as f64 / sx, top as f64 / sy))
}

fn output(bytes: Vec<u8>, format: Format, w: usize, h: usize, input: super::ImageInfo) -> Output {
    Output {
        bytes,
        format,
        width: w as u32,
        height: h as u32,
        input,
        cpu: Default::default(),
    }
}
