//! End-to-end tests of `probe` and `process` on generated images.

mod common;

use common::*;
use resizer_core::transform::Format;
use resizer_engine::{ImageError, Limits, probe, process};
use turbojpeg::{PixelFormat, Subsamp};

const W: usize = 96;
const H: usize = 64;

/// One fixture per input format (with alpha where the format has it).
fn inputs() -> Vec<(&'static str, Format, Vec<u8>)> {
    let rgb = quadrants(W, H);
    let rgba = rgba_from_rgb(&rgb, |i| if i % W < 8 { 0 } else { 255 });
    vec![
        ("jpeg", Format::Jpeg, jpeg_rgb(&rgb, W, H)),
        (
            "png",
            Format::Png,
            png_encode(
                &rgba,
                W as u32,
                H as u32,
                image::ExtendedColorType::Rgba8,
                None,
                None,
            ),
        ),
        ("webp", Format::Webp, webp_lossy(&rgb, W as u32, H as u32)),
        ("gif", Format::Gif, gif_rgba(&rgba, W as u32, H as u32)),
    ]
}

fn magic(bytes: &[u8]) -> Format {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Format::Jpeg
    } else if bytes.starts_with(b"\x89PNG") {
        Format::Png
    } else if bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Format::Webp
    } else if &bytes[4..12] == b"ftypavif" {
        Format::Avif
    } else {
        panic!("unknown output magic {:?}", &bytes[..12]);
    }
}

#[test]
fn every_format_pair() {
    for (name, in_format, bytes) in inputs() {
        let info = probe(&bytes, &Limits::default()).unwrap();
        assert_eq!(
            (info.format, info.width, info.height),
            (in_format, W as u32, H as u32),
            "{name}"
        );
        for out in ["jpeg", "png", "webp", "avif"] {
            let o = run(&bytes, &[("width", "48"), ("format", out)]);
            assert_eq!((o.width, o.height), (48, 32), "{name}→{out}");
            assert_eq!(o.format.as_str(), out, "{name}→{out}");
            assert_eq!(magic(&o.bytes), o.format, "{name}→{out}");
            assert_eq!(o.input, info, "{name}→{out}");
            if out != "avif" {
                let img = decode_rgba(&o.bytes);
                assert_eq!((img.1, img.2), (48, 32), "{name}→{out}");
                // The quadrants survive: sample well inside each one.
                let tol = 40;
                assert!(
                    close(px(&img, 16, 4), GREEN, tol) || close(px(&img, 36, 4), GREEN, tol),
                    "{name}→{out}"
                );
                assert!(
                    close(px(&img, 12, 28), BLUE, tol),
                    "{name}→{out} {:?}",
                    px(&img, 12, 28)
                );
                assert!(
                    close(px(&img, 36, 28), WHITE, tol),
                    "{name}→{out} {:?}",
                    px(&img, 36, 28)
                );
            }
        }
        // No format asked: the input's, except GIF becomes PNG.
        let o = run(&bytes, &[("width", "10")]);
        assert_eq!(o.format, Format::default_output_for(in_format), "{name}");
        assert!(
            o.cpu > std::time::Duration::ZERO,
            "{name}: CPU time is measured"
        );
    }
}

#[test]
fn jpeg_variants_decode() {
    let rgb = quadrants(W, H);
    let gray: Vec<u8> = rgb.chunks_exact(3).map(|p| p[0]).collect();
    let cases = [
        (
            "baseline 4:4:4",
            jpeg_encode(&rgb, W, H, PixelFormat::RGB, Subsamp::None, false),
        ),
        (
            "baseline 4:2:2",
            jpeg_encode(&rgb, W, H, PixelFormat::RGB, Subsamp::Sub2x1, false),
        ),
        (
            "progressive 4:2:0",
            jpeg_encode(&rgb, W, H, PixelFormat::RGB, Subsamp::Sub2x2, true),
        ),
        (
            "grayscale",
            jpeg_encode(&gray, W, H, PixelFormat::GRAY, Subsamp::Gray, false),
        ),
    ];
    for (name, bytes) in cases {
        for out in ["jpeg", "png"] {
            let o = run(&bytes, &[("width", "48"), ("format", out)]);
            let img = decode_rgba(&o.bytes);
            assert_eq!((img.1, img.2), (48, 32), "{name}");
            if name != "grayscale" {
                assert!(
                    close(px(&img, 12, 28), BLUE, 30),
                    "{name} {:?}",
                    px(&img, 12, 28)
                );
                assert!(
                    close(px(&img, 36, 4), GREEN, 30),
                    "{name} {:?}",
                    px(&img, 36, 4)
                );
            } else {
                assert!(
                    close(px(&img, 12, 4), [RED[0]; 3], 30),
                    "{name} {:?}",
                    px(&img, 12, 4)
                );
            }
        }
    }
}

#[test]
fn odd_sizes_and_all_subsamplings_round_trip() {
    // Odd dimensions exercise the padded Y plane and the chroma crop maths.
    for (w, h) in [(97, 61), (33, 17), (3, 3), (1, 1)] {
        let rgb = pattern(w, h);
        for sub in [
            Subsamp::Sub2x2,
            Subsamp::None,
            Subsamp::Sub2x1,
            Subsamp::Sub1x2,
        ] {
            let bytes = jpeg_encode(&rgb, w, h, PixelFormat::RGB, sub, false);
            for q in [
                &[("width", "31")][..],
                &[("height", "1")],
                &[("width", "5"), ("height", "5"), ("fit", "cover")],
            ] {
                let o = run(&bytes, q);
                let img = decode_rgba(&o.bytes);
                assert_eq!((img.1, img.2), (o.width as usize, o.height as usize));
            }
        }
    }
}

#[test]
fn cmyk_jpeg_adobe_inverted() {
    // Photoshop-style CMYK: stored inverted (255 = no ink) with an Adobe APP14 marker, which
    // libjpeg-turbo writes for CMYK. Ink: red = C0 M100 Y100 K0, blue = C100 M100 Y0 K0.
    let (w, h) = (32, 16);
    let mut cmyk = Vec::new();
    for _y in 0..h {
        for x in 0..w {
            let ink: [u8; 4] = if x < w / 2 {
                [0, 255, 255, 0]
            } else {
                [255, 255, 0, 0]
            };
            cmyk.extend(ink.iter().map(|v| 255 - v));
        }
    }
    let bytes = jpeg_encode(&cmyk, w, h, PixelFormat::CMYK, Subsamp::None, false);
    let o = run(&bytes, &[("width", "16"), ("format", "png")]);
    let img = decode_rgba(&o.bytes);
    assert!(
        close(px(&img, 2, 4), [255, 0, 0], 20),
        "{:?}",
        px(&img, 2, 4)
    );
    assert!(
        close(px(&img, 13, 4), [0, 0, 255], 20),
        "{:?}",
        px(&img, 13, 4)
    );
}

/// Displayed quadrant colours (TL, TR, BL, BR) for stored quadrants R G / B W, per EXIF value.
fn expected_corners(o: u16) -> [[u8; 3]; 4] {
    match o {
        1 => [RED, GREEN, BLUE, WHITE],
        2 => [GREEN, RED, WHITE, BLUE],
        3 => [WHITE, BLUE, GREEN, RED],
        4 => [BLUE, WHITE, RED, GREEN],
        5 => [RED, BLUE, GREEN, WHITE],
        6 => [BLUE, RED, WHITE, GREEN],
        7 => [WHITE, GREEN, BLUE, RED],
        8 => [GREEN, WHITE, RED, BLUE],
        _ => unreachable!(),
    }
}

fn check_orientation(what: &str, o: u16, out: &resizer_engine::Output) {
    let img = decode_rgba(&out.bytes);
    let (w, h) = (img.1, img.2);
    if o >= 5 {
        assert!(h > w, "{what} orientation {o}: {w}x{h} should be portrait");
    } else {
        assert!(w > h, "{what} orientation {o}: {w}x{h} should be landscape");
    }
    let corners = [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ];
    for (k, (x, y)) in corners.into_iter().enumerate() {
        let want = expected_corners(o)[k];
        assert!(
            close(px(&img, x, y), want, 40),
            "{what} orientation {o}, corner {k}: {:?} vs {want:?}",
            px(&img, x, y)
        );
    }
}

#[test]
fn all_eight_exif_orientations_jpeg() {
    let base = jpeg_rgb(&quadrants(W, H), W, H);
    for o in 1..=8u16 {
        let bytes = jpeg_with_orientation(&base, o);
        // JPEG fast path (YUV planes) and the RGB path (PNG output) both orient.
        for fmt in ["jpeg", "png"] {
            let out = run(&bytes, &[("width", "40"), ("format", fmt)]);
            // `width` applies to the displayed image.
            assert_eq!(out.width, 40, "orientation {o}");
            check_orientation(&format!("jpeg→{fmt}"), o, &out);
        }
        // cover crops in the displayed frame.
        let out = run(
            &bytes,
            &[
                ("width", "30"),
                ("height", "20"),
                ("fit", "cover"),
                ("format", "png"),
            ],
        );
        assert_eq!((out.width, out.height), (30, 20));
    }
}

#[test]
fn orientation_from_png_and_webp() {
    let rgb = quadrants(W, H);
    let rgba = rgba_from_rgb(&rgb, |_| 255);
    for o in [3u16, 6, 8] {
        let png = png_encode(
            &rgb,
            W as u32,
            H as u32,
            image::ExtendedColorType::Rgb8,
            None,
            Some(exif_orientation(o)),
        );
        check_orientation("png", o, &run(&png, &[("width", "40"), ("format", "png")]));
        let simple = webp_lossless(&rgba, W as u32, H as u32);
        let webp = webp_with_exif(&simple, W as u32, H as u32, &exif_orientation(o));
        check_orientation(
            "webp",
            o,
            &run(&webp, &[("width", "40"), ("format", "png")]),
        );
    }
}

#[test]
fn rotate_flip_and_flop_turn_the_image_after_its_exif_orientation() {
    // Each request on an unrotated image looks like the EXIF orientation it amounts to.
    let rgb = quadrants(W, H);
    let plain = jpeg_rgb(&rgb, W, H);
    let png = png_rgb(&rgb, W as u32, H as u32);
    let cases: &[(&[(&str, &str)], u16)] = &[
        (&[("rotate", "90")], 6),
        (&[("rotate", "180")], 3),
        (&[("rotate", "270")], 8),
        (&[("flop", "true")], 2),
        (&[("flip", "true")], 4),
        (&[("rotate", "90"), ("flop", "true")], 5),
        (&[("rotate", "90"), ("flip", "true")], 7),
    ];
    for (q, exif) in cases {
        for (name, bytes) in [("jpeg", &plain), ("png", &png)] {
            for fmt in ["jpeg", "png"] {
                let mut all = vec![("width", "40"), ("format", fmt)];
                all.extend_from_slice(q);
                let out = run(bytes, &all);
                assert_eq!(out.width, 40, "{q:?}");
                check_orientation(&format!("{name}→{fmt} {q:?}"), *exif, &out);
            }
        }
    }
    // After EXIF: a photo stored turned (6) and turned back by the caller (270) is upright.
    let turned = jpeg_with_orientation(&plain, 6);
    let out = run(&turned, &[("width", "40"), ("rotate", "270")]);
    check_orientation("exif 6 + rotate 270", 1, &out);
    let out = run(&turned, &[("width", "40"), ("rotate", "90")]);
    check_orientation("exif 6 + rotate 90", 3, &out);
}

/// Three vertical bands, red | green | blue, `w × h`.
fn bands(w: usize, h: usize) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| match 3 * (i % w) / w {
            0 => RED,
            1 => GREEN,
            _ => BLUE,
        })
        .collect()
}

#[test]
fn cover_keeps_the_side_the_position_names_and_contain_places_the_image() {
    let bytes = jpeg_rgb(&bands(600, 200), 600, 200);
    let cover = |q: &[(&str, &str)]| {
        let mut all = vec![
            ("width", "100"),
            ("height", "100"),
            ("fit", "cover"),
            ("format", "png"),
        ];
        all.extend_from_slice(q);
        let img = decode_rgba(&run(&bytes, &all).bytes);
        assert_eq!((img.1, img.2), (100, 100), "{q:?}");
        px(&img, 50, 50)
    };
    assert!(close(cover(&[]), GREEN, 40));
    assert!(close(cover(&[("position", "west")]), RED, 40));
    assert!(close(cover(&[("position", "southeast")]), BLUE, 40));
    assert!(close(cover(&[("fx", "0.9"), ("fy", "0.5")]), BLUE, 40));
    assert!(close(cover(&[("fx", "0.1"), ("fy", "0.5")]), RED, 40));

    // contain: a 300 × 100 image in a 300 × 300 box, at the top, middle or bottom.
    let img = |position: &str| {
        decode_rgba(
            &run(
                &bytes,
                &[
                    ("width", "300"),
                    ("height", "300"),
                    ("fit", "contain"),
                    ("background", "000000"),
                    ("format", "png"),
                    ("position", position),
                ],
            )
            .bytes,
        )
    };
    let north = img("north");
    assert!(close(px(&north, 50, 50), RED, 40) && close(px(&north, 50, 250), [0; 3], 5));
    let south = img("south");
    assert!(close(px(&south, 50, 250), RED, 40) && close(px(&south, 50, 50), [0; 3], 5));
}

/// The mean absolute difference between horizontally adjacent pixels, over R, G and B: 0 for a
/// flat image.
fn detail(img: &(Vec<u8>, usize, usize)) -> f64 {
    let mut sum = 0u64;
    for y in 0..img.2 {
        for x in 1..img.1 {
            let (a, b) = (px(img, x, y), px(img, x - 1, y));
            sum += (0..3).map(|c| u64::from(a[c].abs_diff(b[c]))).sum::<u64>();
        }
    }
    sum as f64 / (img.2 * (img.1 - 1)) as f64
}

#[test]
fn content_aware_crops_keep_what_is_interesting() {
    // 1200 × 600 flat grey with a detailed 200 × 200 patch (the test pattern's rings) near the
    // right edge, and a saturated red disc near the left edge of a second image.
    let (w, h) = (1200, 600);
    let rings = pattern(200, 200);
    let detailed: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            if (950..1150).contains(&x) && (200..400).contains(&y) {
                let j = ((y - 200) * 200 + (x - 950)) * 3;
                [rings[j], rings[j + 1], rings[j + 2]]
            } else {
                [128, 128, 128]
            }
        })
        .collect();
    let bytes = jpeg_rgb(&detailed, w, h);
    let crop = |bytes: &[u8], position: &str| {
        decode_rgba(
            &run(
                bytes,
                &[
                    ("width", "150"),
                    ("height", "150"),
                    ("fit", "cover"),
                    ("format", "png"),
                    ("position", position),
                ],
            )
            .bytes,
        )
    };
    assert!(detail(&crop(&bytes, "centre")) < 0.5);
    for position in ["entropy", "attention"] {
        let d = detail(&crop(&bytes, position));
        assert!(d > 5.0, "{position}: detail {d}");
    }

    let disc: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (dx, dy) = ((i % w) as f64 - 150.0, (i / w) as f64 - 300.0);
            if dx * dx + dy * dy < 80.0 * 80.0 {
                RED
            } else {
                [128, 128, 128]
            }
        })
        .collect();
    let bytes = jpeg_rgb(&disc, w, h);
    let out = crop(&bytes, "attention");
    assert!(close(px(&out, 38, 75), RED, 40), "{:?}", px(&out, 38, 75));
    assert!(!close(px(&crop(&bytes, "centre"), 75, 75), RED, 60));
}

#[test]
fn format_auto_takes_the_best_the_client_accepts_and_keeps_transparency() {
    let rgb = quadrants(W, H);
    let opaque = rgba_from_rgb(&rgb, |_| 255);
    let holey = rgba_from_rgb(&rgb, |i| if i % W < 8 { 0 } else { 255 });
    let png = |rgba: &[u8]| {
        png_encode(
            rgba,
            W as u32,
            H as u32,
            image::ExtendedColorType::Rgba8,
            None,
            None,
        )
    };
    let jpeg = jpeg_rgb(&rgb, W, H);
    let auto = |bytes: &[u8], accept: &str| {
        let s = spec(&[("width", "48"), ("format", "auto")]).negotiated(Some(accept));
        let o = process(bytes, &s, &Limits::default()).unwrap();
        assert_eq!(magic(&o.bytes), o.format, "{accept}");
        o.format
    };
    assert_eq!(auto(&jpeg, "image/avif,image/webp,*/*"), Format::Avif);
    assert_eq!(auto(&jpeg, "image/webp,*/*"), Format::Webp);
    assert_eq!(auto(&jpeg, "*/*"), Format::Jpeg);
    // PNG only when the image has transparency: an RGBA PNG that is all opaque becomes JPEG.
    assert_eq!(auto(&png(&holey), "*/*"), Format::Png);
    assert_eq!(auto(&png(&opaque), "*/*"), Format::Jpeg);
    assert_eq!(auto(&png(&holey), "image/webp"), Format::Webp);
    // An output over AVIF's limit (8 MP by default; 1,000 px here) falls back to WebP instead
    // of failing, from JPEG (checked before decoding) and from PNG (after).
    let s = spec(&[("width", "48"), ("format", "auto")]).negotiated(Some("image/avif,image/webp"));
    let limits = Limits {
        max_slow_output_pixels: 1_000,
        ..Limits::default()
    };
    for bytes in [&jpeg, &png(&holey)] {
        let o = process(bytes, &s, &limits).unwrap();
        assert_eq!((o.format, o.width, o.height), (Format::Webp, 48, 32));
    }
    let fixed = spec(&[("width", "48"), ("format", "avif")]);
    assert!(matches!(
        process(&jpeg, &fixed, &limits),
        Err(ImageError::OutputTooLarge(_))
    ));
}

#[test]
fn fit_modes_end_to_end() {
    let bytes = jpeg_rgb(&pattern(400, 200), 400, 200);
    type Case<'a> = (&'a [(&'a str, &'a str)], (u32, u32));
    let cases: &[Case<'_>] = &[
        (
            &[("width", "100"), ("height", "100"), ("fit", "cover")],
            (100, 100),
        ),
        (
            &[("width", "100"), ("height", "100"), ("fit", "contain")],
            (100, 100),
        ),
        (
            &[("width", "100"), ("height", "100"), ("fit", "fill")],
            (100, 100),
        ),
        (
            &[("width", "100"), ("height", "100"), ("fit", "inside")],
            (100, 50),
        ),
        (
            &[("width", "100"), ("height", "100"), ("fit", "outside")],
            (200, 100),
        ),
        (&[("width", "1000")], (400, 200)),
        (&[("width", "1000"), ("enlarge", "true")], (1000, 500)),
        (&[("height", "50")], (100, 50)),
    ];
    for (q, dims) in cases {
        let o = run(&bytes, q);
        assert_eq!((o.width, o.height), *dims, "{q:?}");
        let img = decode_rgba(&o.bytes);
        assert_eq!((img.1 as u32, img.2 as u32), *dims, "{q:?}");
    }
}

#[test]
fn contain_letterbox_colours() {
    // Opaque input: the letterbox is the background colour, in every output format.
    let bytes = jpeg_rgb(&quadrants(W, H), W, H);
    for fmt in ["jpeg", "png", "webp"] {
        let o = run(
            &bytes,
            &[
                ("width", "60"),
                ("height", "60"),
                ("fit", "contain"),
                ("background", "00ff00"),
                ("format", fmt),
            ],
        );
        let img = decode_rgba(&o.bytes);
        assert_eq!((img.1, img.2), (60, 60));
        assert!(
            close(px(&img, 30, 2), [0, 255, 0], 12),
            "{fmt} {:?}",
            px(&img, 30, 2)
        );
        assert_eq!(px(&img, 30, 2)[3], 255, "{fmt}");
    }
    // Alpha input and an alpha-capable output: a transparent letterbox.
    let rgba = rgba_from_rgb(&quadrants(W, H), |_| 255);
    let png = png_encode(
        &rgba,
        W as u32,
        H as u32,
        image::ExtendedColorType::Rgba8,
        None,
        None,
    );
    let o = run(
        &png,
        &[
            ("width", "60"),
            ("height", "60"),
            ("fit", "contain"),
            ("format", "png"),
        ],
    );
    let img = decode_rgba(&o.bytes);
    assert_eq!(px(&img, 30, 2)[3], 0);
    assert_eq!(px(&img, 30, 30)[3], 255);
    // …flattened onto the background for JPEG.
    let o = run(
        &png,
        &[
            ("width", "60"),
            ("height", "60"),
            ("fit", "contain"),
            ("format", "jpeg"),
            ("background", "0000ff"),
        ],
    );
    let img = decode_rgba(&o.bytes);
    assert!(
        close(px(&img, 30, 2), [0, 0, 255], 12),
        "{:?}",
        px(&img, 30, 2)
    );
}

#[test]
fn alpha_is_premultiplied_and_flattened() {
    // Alternate columns of opaque white and fully transparent *black*: a straight-alpha
    // resize would drag the colour towards grey; premultiplied keeps it white.
    let (w, h) = (64, 16);
    let mut rgba = Vec::new();
    for _ in 0..h {
        for x in 0..w {
            rgba.extend_from_slice(if x % 2 == 0 {
                &[255, 255, 255, 255]
            } else {
                &[0, 0, 0, 0]
            });
        }
    }
    let png = png_encode(
        &rgba,
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgba8,
        None,
        None,
    );
    let o = run(&png, &[("width", "16"), ("format", "png")]);
    let img = decode_rgba(&o.bytes);
    let p = px(&img, 8, 1);
    assert!(
        p[0] > 245 && p[1] > 245 && p[2] > 245,
        "colour bled from transparent pixels: {p:?}"
    );
    assert!((100..=155).contains(&p[3]), "alpha {p:?}");
    // JPEG has no alpha: flattened onto the background (red here) → pink.
    let o = run(
        &png,
        &[
            ("width", "16"),
            ("format", "jpeg"),
            ("background", "ff0000"),
        ],
    );
    let img = decode_rgba(&o.bytes);
    let p = px(&img, 8, 1);
    assert!(
        p[0] > 240 && (100..=155).contains(&p[1]) && (100..=155).contains(&p[2]),
        "{p:?}"
    );
    // WebP keeps alpha, lossy and lossless.
    for lossless in ["false", "true"] {
        let o = run(
            &png,
            &[("width", "16"), ("format", "webp"), ("lossless", lossless)],
        );
        let img = decode_rgba(&o.bytes);
        assert!(
            (90..=165).contains(&px(&img, 8, 1)[3]),
            "lossless={lossless} {:?}",
            px(&img, 8, 1)
        );
    }
}

#[test]
fn png_kinds_palette_16bit_gray_alpha() {
    let (w, h) = (40u32, 20u32);
    let pal = png_palette(w, h);
    let o = run(&pal, &[("width", "20"), ("format", "png")]);
    let img = decode_rgba(&o.bytes);
    assert!(close(px(&img, 1, 5), RED, 10), "{:?}", px(&img, 1, 5));
    assert_eq!(
        px(&img, 19, 5)[3],
        0,
        "tRNS made the last palette entry transparent"
    );

    let rgb16: Vec<u8> = quadrants(w as usize, h as usize)
        .iter()
        .flat_map(|&v| (u16::from(v) * 257).to_ne_bytes())
        .collect();
    let png16 = png_encode(&rgb16, w, h, image::ExtendedColorType::Rgb16, None, None);
    let o = run(&png16, &[("width", "20"), ("format", "png")]);
    let img = decode_rgba(&o.bytes);
    assert!(close(px(&img, 15, 7), WHITE, 3), "{:?}", px(&img, 15, 7));

    let la: Vec<u8> = (0..w * h).flat_map(|i| [(i % 256) as u8, 200]).collect();
    let png_la = png_encode(&la, w, h, image::ExtendedColorType::La8, None, None);
    let o = run(&png_la, &[("width", "20"), ("format", "webp")]);
    assert_eq!((o.width, o.height), (20, 10));
}

#[test]
fn webp_kinds() {
    let rgb = pattern(W, H);
    let rgba = rgba_from_rgb(&rgb, |i| (i % 256) as u8);
    for (name, bytes) in [
        ("lossy", webp_lossy(&rgb, W as u32, H as u32)),
        ("lossy+alpha", webp_lossy_alpha(&rgba, W as u32, H as u32)),
        ("lossless", webp_lossless(&rgba, W as u32, H as u32)),
    ] {
        let o = run(&bytes, &[("width", "32"), ("format", "png")]);
        assert_eq!((o.width, o.height), (32, 21), "{name}");
    }
}

#[test]
fn gif_first_frame() {
    let rgba = rgba_from_rgb(&quadrants(W, H), |_| 255);
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let first = image::RgbaImage::from_raw(W as u32, H as u32, rgba).unwrap();
        let second = image::RgbaImage::from_pixel(W as u32, H as u32, image::Rgba([0, 0, 0, 255]));
        enc.encode_frames([image::Frame::new(first), image::Frame::new(second)])
            .unwrap();
    }
    let o = run(&out, &[("width", "48")]);
    assert_eq!(o.format, Format::Png);
    let img = decode_rgba(&o.bytes);
    assert!(close(px(&img, 36, 28), WHITE, 10), "{:?}", px(&img, 36, 28));
}

#[test]
fn icc_profiles_are_converted_to_srgb() {
    use moxcms::{ColorProfile, Layout, TransformOptions};
    let p3 = ColorProfile::new_display_p3();
    let icc = p3.encode().unwrap();
    let colour = [200u8, 80, 60];
    let t = p3
        .create_transform_8bit(
            Layout::Rgb,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            TransformOptions::default(),
        )
        .unwrap();
    let mut want = [0u8; 3];
    t.transform(&colour, &mut want).unwrap();
    assert!(
        want[0].abs_diff(colour[0]) > 10,
        "the test colour must move visibly: {want:?}"
    );

    let (w, h) = (32usize, 32usize);
    let flat: Vec<u8> = colour.iter().copied().cycle().take(w * h * 3).collect();
    let jpeg = jpeg_with_icc(&jpeg_rgb(&flat, w, h), &icc);
    let png = png_encode(
        &flat,
        w as u32,
        h as u32,
        image::ExtendedColorType::Rgb8,
        Some(icc.clone()),
        None,
    );
    for (name, bytes) in [("jpeg", jpeg), ("png", png)] {
        for fmt in ["jpeg", "png"] {
            let o = run(&bytes, &[("width", "16"), ("format", fmt)]);
            let img = decode_rgba(&o.bytes);
            assert!(
                close(px(&img, 8, 8), want, 4),
                "{name}→{fmt}: {:?} vs {want:?}",
                px(&img, 8, 8)
            );
        }
    }
    // An sRGB profile changes nothing (and keeps the JPEG fast path).
    let srgb = ColorProfile::new_srgb().encode().unwrap();
    let jpeg = jpeg_with_icc(&jpeg_rgb(&flat, w, h), &srgb);
    let img = decode_rgba(&run(&jpeg, &[("width", "16")]).bytes);
    assert!(close(px(&img, 8, 8), colour, 4), "{:?}", px(&img, 8, 8));
}

fn jpeg_segments(bytes: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let m = bytes[i + 1];
        markers.push(m);
        if m == 0xDA {
            break;
        }
        i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
    }
    markers
}

fn png_chunks(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        names.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        i += 12 + len;
    }
    names
}

fn webp_chunks(bytes: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[i + 4..i + 8].try_into().unwrap()) as usize;
        names.push(String::from_utf8_lossy(&bytes[i..i + 4]).into_owned());
        i += 8 + len + (len & 1);
    }
    names
}

#[test]
fn no_metadata_in_any_output() {
    use moxcms::ColorProfile;
    let icc = ColorProfile::new_display_p3().encode().unwrap();
    let rgb = quadrants(W, H);
    let mut jpeg = jpeg_with_orientation(&jpeg_with_icc(&jpeg_rgb(&rgb, W, H), &icc), 6);
    jpeg = jpeg_with_segment(&jpeg, 0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>");
    let png = png_encode(
        &rgb,
        W as u32,
        H as u32,
        image::ExtendedColorType::Rgb8,
        Some(icc),
        Some(exif_orientation(6)),
    );
    for (name, bytes) in [("jpeg", jpeg), ("png", png)] {
        for fmt in ["jpeg", "png", "webp", "avif"] {
            let o = run(&bytes, &[("width", "40"), ("format", fmt)]);
            let b = &o.bytes;
            match o.format {
                Format::Jpeg => {
                    let m = jpeg_segments(b);
                    assert!(
                        !m.iter().any(|&m| (0xE1..=0xEF).contains(&m)),
                        "{name}→{fmt}: APPn {m:x?}"
                    );
                }
                Format::Png => {
                    let c = png_chunks(b);
                    for bad in ["eXIf", "iCCP", "iTXt", "tEXt", "zTXt", "sRGB", "gAMA"] {
                        assert!(!c.iter().any(|n| n == bad), "{name}→{fmt}: {c:?}");
                    }
                }
                Format::Webp => {
                    let c = webp_chunks(b);
                    for bad in ["EXIF", "ICCP", "XMP "] {
                        assert!(!c.iter().any(|n| n == bad), "{name}→{fmt}: {c:?}");
                    }
                }
                _ => {}
            }
            for needle in [&b"Exif\0\0"[..], b"ICC_PROFILE", b"xmpmeta", b"prof"] {
                assert!(
                    !b.windows(needle.len()).any(|w| w == needle),
                    "{name}→{fmt}: {needle:?}"
                );
            }
        }
    }
}

/// A tiny PNG whose IHDR declares `w × h`, followed by garbage.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(b"\0\0\0\x10IDATgarbagegarbage!");
    b
}

/// A tiny JPEG whose SOF declares `w × h`, with a scan of garbage.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let real = jpeg_rgb(&quadrants(16, 16), 16, 16);
    let mut b = real.clone();
    let sof = b.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    b
}

#[test]
fn limits_are_checked_from_the_header_without_allocating() {
    let spec = spec(&[("width", "100")]);
    let limits = Limits::default();
    for (name, bytes) in [
        ("png", png_declaring(30000, 30000)),
        ("jpeg", jpeg_declaring(30000, 30000)),
    ] {
        assert!(bytes.len() < 1000, "{name} fixture is tiny");
        let before = rss_kib();
        let err = process(&bytes, &spec, &limits).unwrap_err();
        let after = rss_kib();
        assert_eq!(
            err,
            ImageError::TooManyPixels {
                pixels: 900_000_000,
                limit: 50_000_000
            },
            "{name}"
        );
        assert!(
            after.saturating_sub(before) < 4 * 1024,
            "{name}: RSS grew {before} → {after} KiB"
        );
        assert_eq!(
            probe(&bytes, &limits).unwrap_err().code(),
            "too_many_pixels"
        );
    }
    // Under the pixel limit but over the side limit.
    let err = process(&png_declaring(20000, 100), &spec, &limits).unwrap_err();
    assert_eq!(err.code(), "dimensions_too_large");
    // Custom limits apply too.
    let tight = Limits {
        max_input_pixels: 1000,
        ..Limits::default()
    };
    let small = jpeg_rgb(&quadrants(40, 40), 40, 40);
    assert_eq!(
        process(&small, &spec, &tight).unwrap_err().code(),
        "too_many_pixels"
    );
    // Output side limit.
    let tiny_out = Limits {
        max_output_side: 50,
        ..Limits::default()
    };
    assert_eq!(
        process(
            &small,
            &spec_of(&[("width", "60"), ("enlarge", "true")]),
            &tiny_out
        )
        .unwrap_err()
        .code(),
        "dimensions_too_large"
    );
}

fn spec_of(q: &[(&str, &str)]) -> resizer_core::transform::TransformSpec {
    common::spec(q)
}

#[test]
fn probe_reads_only_the_header_prefix() {
    let big = jpeg_rgb(&pattern(1200, 900), 1200, 900);
    assert!(big.len() > 64 * 1024);
    let info = probe(&big[..4096], &Limits::default()).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (Format::Jpeg, 1200, 900)
    );
    for (bytes, format) in [
        (png_rgb(&quadrants(W, H), W as u32, H as u32), Format::Png),
        (
            webp_lossy(&quadrants(W, H), W as u32, H as u32),
            Format::Webp,
        ),
        (
            webp_lossless(&rgba_from_rgb(&quadrants(W, H), |_| 9), W as u32, H as u32),
            Format::Webp,
        ),
        (
            gif_rgba(
                &rgba_from_rgb(&quadrants(W, H), |_| 255),
                W as u32,
                H as u32,
            ),
            Format::Gif,
        ),
    ] {
        let info = probe(&bytes[..40.min(bytes.len())], &Limits::default()).unwrap();
        assert_eq!(
            (info.format, info.width, info.height),
            (format, W as u32, H as u32)
        );
    }
}

#[test]
fn bad_input_is_an_error_never_a_panic() {
    let spec = spec(&[("width", "50")]);
    let limits = Limits::default();
    assert_eq!(
        process(&[], &spec, &limits).unwrap_err().code(),
        "invalid_image"
    );
    assert_eq!(
        process(b"definitely not an image", &spec, &limits)
            .unwrap_err()
            .code(),
        "unsupported_format"
    );
    let avif = run(
        &jpeg_rgb(&quadrants(W, H), W, H),
        &[("width", "20"), ("format", "avif")],
    )
    .bytes;
    assert_eq!(
        process(&avif, &spec, &limits).unwrap_err().code(),
        "unsupported_format"
    );

    // Random bytes behind each format's magic.
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for magic in [
        &b"\xFF\xD8\xFF"[..],
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF\0\0\0\0WEBPVP8 ",
    ] {
        for n in [0, 1, 10, 100, 5000] {
            let mut b = magic.to_vec();
            b.extend(rnd(n));
            let err = process(&b, &spec, &limits).unwrap_err();
            assert!(err.is_permanent(), "{err:?}");
        }
    }

    // Every truncation of valid files, and garbage after a valid header.
    let rgb = pattern(W, H);
    let files = [
        jpeg_rgb(&rgb, W, H),
        jpeg_encode(&rgb, W, H, PixelFormat::RGB, Subsamp::Sub2x2, true),
        png_rgb(&rgb, W as u32, H as u32),
        webp_lossy(&rgb, W as u32, H as u32),
        webp_lossless(&rgba_from_rgb(&rgb, |_| 200), W as u32, H as u32),
        gif_rgba(&rgba_from_rgb(&rgb, |_| 255), W as u32, H as u32),
    ];
    for f in &files {
        let step = (f.len() / 60).max(1);
        for cut in (0..f.len() - 1).step_by(step) {
            match process(&f[..cut], &spec, &limits) {
                Ok(_) => {} // some codecs tolerate a missing tail (e.g. GIF trailer)
                Err(e) => assert!(
                    e.is_permanent() && e.code() != "internal_error",
                    "cut {cut}: {e:?}"
                ),
            }
        }
        let head = 40.min(f.len());
        let mut g = f[..head].to_vec();
        g.extend(rnd(3000));
        if let Err(e) = process(&g, &spec, &limits) {
            assert!(e.is_permanent(), "{e:?}");
        }
    }
}

#[test]
fn truncated_jpeg_is_rejected() {
    let f = jpeg_rgb(&pattern(200, 200), 200, 200);
    let err = process(
        &f[..f.len() / 2],
        &spec(&[("width", "50")]),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_image");
}

#[test]
fn error_codes_and_permanence() {
    let cases = [
        (
            ImageError::UnsupportedFormat("x".into()),
            "unsupported_format",
            true,
        ),
        (ImageError::InvalidImage("x".into()), "invalid_image", true),
        (
            ImageError::TooManyPixels {
                pixels: 2,
                limit: 1,
            },
            "too_many_pixels",
            true,
        ),
        (
            ImageError::DimensionsTooLarge("x".into()),
            "dimensions_too_large",
            true,
        ),
        (
            ImageError::InvalidParameter("x".into()),
            "invalid_parameter",
            true,
        ),
        (ImageError::Internal("x".into()), "internal_error", false),
    ];
    for (e, code, permanent) in cases {
        assert_eq!((e.code(), e.is_permanent()), (code, permanent));
    }
}

#[test]
fn lossless_jpeg_decodes_without_shrink_on_load() {
    // SOF3 (lossless) JPEGs cannot be DCT-scaled or decoded to YUV; they take the RGB path.
    let rgb = quadrants(W * 4, H * 4);
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_lossless(true).unwrap();
    let image = turbojpeg::Image {
        pixels: &rgb[..],
        width: W * 4,
        pitch: W * 12,
        height: H * 4,
        format: PixelFormat::RGB,
    };
    let bytes = c.compress_to_vec(image).unwrap();
    for fmt in ["jpeg", "png"] {
        let o = run(&bytes, &[("width", "48"), ("format", fmt)]);
        let img = decode_rgba(&o.bytes);
        assert_eq!((img.1, img.2), (48, 32));
        assert!(
            close(px(&img, 36, 28), WHITE, 20),
            "{fmt} {:?}",
            px(&img, 36, 28)
        );
    }
}

#[test]
fn the_output_canvas_is_capped_before_anything_is_decoded() {
    // A 1x1 image asking for a 67-megapixel contain canvas: refused, whatever the format.
    let tiny = gif_rgba(&[255, 0, 0, 255], 1, 1);
    let huge = spec_of(&[("width", "8192"), ("height", "8192"), ("fit", "contain")]);
    let e = process(&tiny, &huge, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "output_too_large", "{e}");
    assert!(e.is_permanent());
    // A slow encoder has a lower cap.
    let avif = spec_of(&[
        ("width", "4000"),
        ("height", "4000"),
        ("fit", "contain"),
        ("format", "avif"),
    ]);
    assert_eq!(
        process(&tiny, &avif, &Limits::default())
            .unwrap_err()
            .code(),
        "output_too_large"
    );
    // A JPEG's exact (oriented) size is checked too.
    let jpeg = jpeg_rgb(&quadrants(40, 40), 40, 40);
    let tight = Limits {
        max_output_pixels: 100,
        ..Limits::default()
    };
    assert_eq!(
        process(&jpeg, &spec_of(&[("width", "20")]), &tight)
            .unwrap_err()
            .code(),
        "output_too_large"
    );
    assert!(process(&jpeg, &spec_of(&[("width", "10")]), &tight).is_ok());
}

#[test]
fn a_jpeg_with_extraneous_bytes_decodes_like_browsers_and_libvips_show_it() {
    // Camera files often carry junk before a marker; libjpeg warns ("Corrupt JPEG data: N
    // extraneous bytes before marker 0xd9") and decodes everything. Only errors refuse an image.
    let good = jpeg_rgb(&quadrants(W, H), W, H);
    let eoi = good.len() - 2;
    assert_eq!(&good[eoi..], &[0xff, 0xd9]);
    let mut junk = good[..eoi].to_vec();
    junk.extend_from_slice(&[0x00, 0x13, 0x37, 0x42]);
    junk.extend_from_slice(&[0xff, 0xd9]);
    for out in ["jpeg", "png"] {
        let o = run(&junk, &[("width", "48"), ("format", out)]);
        let img = decode_rgba(&o.bytes);
        assert_eq!((img.1, img.2), (48, 32));
        assert!(close(px(&img, 12, 28), BLUE, 30), "{:?}", px(&img, 12, 28));
    }
}
