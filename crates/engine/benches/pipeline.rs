//! Criterion benchmarks of `process`: `cargo bench -p resizer-core --bench pipeline`.
//!
//! Inputs are generated (a textured 1800×1125 image, encoded once per format) so the benches
//! need no files; set `RESIZER_BENCH_JPEG=/path/photo.jpg` to use a real photograph for the
//! JPEG cases instead. The side-by-side comparison with libvips and sharp is bench/compare.sh.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::ImageEncoder;
use resizer_core::transform::TransformSpec;
use resizer_engine::{Limits, process};

const W: usize = 1800;
const H: usize = 1125;

/// Smooth gradients with fine detail on top (a stand-in for a photo's texture).
fn texture() -> Vec<u8> {
    let mut v = Vec::with_capacity(W * H * 3);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for y in 0..H {
        for x in 0..W {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 7) as f64 - 3.0;
            let (fx, fy) = (x as f64 / W as f64, y as f64 / H as f64);
            let ring = (((fx - 0.4).powi(2) + (fy - 0.6).powi(2)).sqrt() * 60.0).sin() * 40.0;
            v.push((60.0 + 150.0 * fx + n).clamp(0.0, 255.0) as u8);
            v.push((80.0 + 100.0 * fy + ring + n).clamp(0.0, 255.0) as u8);
            v.push((120.0 + ring + n).clamp(0.0, 255.0) as u8);
        }
    }
    v
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let rgb = texture();
    let jpeg = match std::env::var("RESIZER_BENCH_JPEG") {
        Ok(path) => std::fs::read(path).expect("RESIZER_BENCH_JPEG is readable"),
        Err(_) => {
            let mut c = turbojpeg::Compressor::new().unwrap();
            c.set_quality(85).unwrap();
            c.set_subsamp(turbojpeg::Subsamp::Sub2x2).unwrap();
            let image = turbojpeg::Image {
                pixels: &rgb[..],
                width: W,
                pitch: W * 3,
                height: H,
                format: turbojpeg::PixelFormat::RGB,
            };
            c.compress_to_vec(image).unwrap()
        }
    };
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, W as u32, H as u32, image::ExtendedColorType::Rgb8)
        .unwrap();
    let webp = webp::Encoder::from_rgb(&rgb, W as u32, H as u32)
        .encode_simple(false, 80.0)
        .unwrap()
        .to_vec();
    vec![("jpeg", jpeg), ("png", png), ("webp", webp)]
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let inputs = inputs();
    let mut g = c.benchmark_group("process");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in &inputs {
        let outputs: &[&str] = if *name == "jpeg" {
            &["jpeg", "webp", "png"]
        } else {
            &["jpeg"]
        };
        for out in outputs {
            for width in ["400", "1024"] {
                let spec = TransformSpec::from_pairs([("width", width), ("format", out)]).unwrap();
                let id = BenchmarkId::new(format!("{name}->{out}"), width);
                g.bench_with_input(id, bytes, |b, bytes| {
                    b.iter(|| process(bytes, &spec, &limits).unwrap())
                });
            }
        }
    }
    // The centre crop, and the content-aware ones (their analysis on top of the same work).
    for position in ["centre", "entropy", "attention"] {
        let cover = TransformSpec::from_pairs([
            ("width", "300"),
            ("height", "300"),
            ("fit", "cover"),
            ("position", position),
        ])
        .unwrap();
        g.bench_with_input(
            BenchmarkId::new(format!("jpeg->jpeg cover {position}"), "300x300"),
            &inputs[0].1,
            |b, bytes| b.iter(|| process(bytes, &cover, &limits).unwrap()),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("avif");
    g.sample_size(10);
    let spec = TransformSpec::from_pairs([("width", "1024"), ("format", "avif")]).unwrap();
    g.bench_with_input(
        BenchmarkId::new("jpeg->avif", "1024"),
        &inputs[0].1,
        |b, bytes| b.iter(|| process(bytes, &spec, &limits).unwrap()),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
