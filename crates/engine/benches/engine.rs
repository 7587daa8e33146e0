//! Command-line driver for bench/compare.sh (not a criterion bench; `harness = false`).
//!
//! ```text
//! cargo bench -p resizer-core --bench engine -- run  --width 400 [--format jpeg] [--repeat 3]
//!             [--residual 2.0] [--catmull-rom] [--rgb] [--avif-speed N] [--out DIR] FILE...
//! cargo bench -p resizer-core --bench engine -- rss  --width 400 FILE
//! ```
//!
//! `run` prints one line per file (`file cpu_seconds width height bytes`) and a summary line
//! `conversions_per_cpu_second N`, counting this thread's CPU time inside `process` only.
//! `rss` converts one file once and prints the process's peak RSS (`VmHWM`) in KiB.

use std::path::PathBuf;
use std::time::Duration;

use fast_image_resize::FilterType;
use resizer_core::transform::TransformSpec;
use resizer_engine::{Limits, Tuning, process_tuned};

struct Args {
    mode: String,
    width: String,
    height: Option<String>,
    format: Option<String>,
    repeat: usize,
    tuning: Tuning,
    out: Option<PathBuf>,
    files: Vec<PathBuf>,
}

fn parse() -> Args {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = it.next().unwrap_or_else(|| "run".into());
    let mut a = Args {
        mode,
        width: "400".into(),
        height: None,
        format: None,
        repeat: 1,
        tuning: Tuning::default(),
        out: None,
        files: Vec::new(),
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--width" => a.width = it.next().expect("--width N"),
            "--height" => a.height = it.next(),
            "--format" => a.format = it.next(),
            "--repeat" => a.repeat = it.next().and_then(|v| v.parse().ok()).expect("--repeat N"),
            "--residual" => {
                a.tuning.shrink_residual = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--residual X")
            }
            "--catmull-rom" => a.tuning.filter = FilterType::CatmullRom,
            "--rgb" => a.tuning.yuv = false,
            "--avif-speed" => {
                a.tuning.avif_speed = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--avif-speed N")
            }
            "--out" => a.out = it.next().map(PathBuf::from),
            _ => a.files.push(PathBuf::from(arg)),
        }
    }
    a
}

fn main() {
    let a = parse();
    let mut pairs = vec![("width", a.width.as_str())];
    if let Some(h) = &a.height {
        pairs.push(("height", h.as_str()));
    }
    if let Some(f) = &a.format {
        pairs.push(("format", f.as_str()));
    }
    let spec = TransformSpec::from_pairs(pairs).expect("valid spec");
    let limits = Limits::default();
    let inputs: Vec<(PathBuf, Vec<u8>)> = a
        .files
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).expect("readable input")))
        .collect();

    if a.mode == "rss" {
        let (_, bytes) = &inputs[0];
        let out = process_tuned(bytes, &spec, &limits, &a.tuning).expect("conversion");
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("VmHWM: 0 kB");
        println!(
            "{} {}x{} {}",
            hwm.split_whitespace().nth(1).unwrap_or("0"),
            out.width,
            out.height,
            out.bytes.len()
        );
        return;
    }

    let mut total = Duration::ZERO;
    let mut count = 0usize;
    for (path, bytes) in &inputs {
        let mut cpu = Duration::ZERO;
        let mut last = None;
        for _ in 0..a.repeat {
            let out = process_tuned(bytes, &spec, &limits, &a.tuning)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cpu += out.cpu;
            last = Some(out);
        }
        let out = last.expect("at least one repeat");
        total += cpu;
        count += a.repeat;
        println!(
            "{} {:.6} {} {} {}",
            path.display(),
            cpu.as_secs_f64() / a.repeat as f64,
            out.width,
            out.height,
            out.bytes.len()
        );
        if let Some(dir) = &a.out {
            let name = path.file_stem().unwrap_or_default().to_string_lossy();
            let file = dir.join(format!("{name}.{}", out.format.extension()));
            std::fs::write(file, &out.bytes).expect("writable output");
        }
    }
    println!(
        "conversions_per_cpu_second {:.2}",
        count as f64 / total.as_secs_f64()
    );
}
