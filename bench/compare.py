#!/usr/bin/env python3
"""Side-by-side engine benchmark: Resizer vs vipsthumbnail vs sharp, one run, one corpus.

Called by bench/compare.sh (which installs the peers and builds everything); not run in CI.
Prints the results and rewrites the "Engine" section of docs/benchmarks.md (between the
engine:begin/engine:end markers), leaving any other section alone.
"""
import argparse
import datetime
import glob
import os
import platform
import re
import resource
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

WIDTHS = (400, 1024)


def sh(cmd, env=None):
    """Runs a command, returns (stdout, child CPU seconds, child max RSS KiB)."""
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    out = p.stdout.read()
    err = p.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return out, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def rate(out):
    m = re.search(r"conversions_per_cpu_second ([\d.]+)", out)
    return float(m.group(1))


class Bench:
    def __init__(self, a):
        self.a = a
        self.pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []

    # --- the three contenders -------------------------------------------------------------
    def ours(self, files, width, repeat, outdir, extra=()):
        os.makedirs(outdir, exist_ok=True)
        out, _, _ = sh(self.pin + [self.a.engine, "run", "--width", str(width), "--repeat", str(repeat),
                                   "--out", outdir, *extra, *files])
        return rate(out)

    def vips(self, files, width, repeat, outdir):
        os.makedirs(outdir, exist_ok=True)
        # Distinct names per repeat, and no operation cache, so nothing is served from cache.
        rep = os.path.join(self.a.work, "vipsrep")
        shutil.rmtree(rep, ignore_errors=True)
        os.makedirs(rep)
        names = []
        for r in range(repeat):
            for f in files:
                n = os.path.join(rep, f"r{r}_{os.path.basename(f)}")
                os.symlink(os.path.abspath(f), n)
                names.append(n)
        env = {"VIPS_CONCURRENCY": "1"}
        base = [self.a.vipsthumbnail, "--vips-cache-max=0", "-s", f"{width}x", "-o",
                os.path.join(outdir, "%s.jpg[Q=80,strip]")]
        _, startup, _ = sh(self.pin + base + [self.a.tiny], env)
        _, cpu, _ = sh(self.pin + base + names, env)
        for f in glob.glob(os.path.join(outdir, "r*_*.jpg")):
            m = re.match(r"r(\d+)_(.*)", os.path.basename(f))
            if m.group(1) == "0":
                os.replace(f, os.path.join(outdir, m.group(2)))
            else:
                os.remove(f)
        return len(names) / max(cpu - startup, 1e-9)

    def sharp(self, files, width, repeat, outdir):
        os.makedirs(outdir, exist_ok=True)
        env = {"UV_THREADPOOL_SIZE": "1", "SHARP_PATH": self.a.sharp}
        out, _, _ = sh(self.pin + ["node", self.a.sharp_bench, str(width), str(repeat), outdir, *files], env)
        return rate(out)

    # --- quality ----------------------------------------------------------------------------
    def ssim(self, files, outdir):
        scores, sizes = [], []
        for f in files:
            o = os.path.join(outdir, os.path.basename(f))
            if not os.path.exists(o):
                o = os.path.splitext(o)[0] + ".jpg"
            out = Image.open(o).convert("RGB")
            ref = Image.open(f).convert("RGB").resize(out.size, Image.LANCZOS)
            s = structural_similarity(np.asarray(ref), np.asarray(out), channel_axis=2, data_range=255)
            scores.append(s)
            sizes.append(os.path.getsize(o))
        return float(np.mean(scores)), float(np.min(scores)), float(np.mean(sizes)) / 1024

    # --- memory -----------------------------------------------------------------------------
    def rss(self, tool, f, width):
        if tool == "ours":
            out, _, maxrss = sh([self.a.engine, "rss", "--width", str(width), f])
            return int(out.split()[0])
        if tool == "vips":
            o = os.path.join(self.a.work, "rss-out.jpg")
            _, _, maxrss = sh([self.a.vipsthumbnail, "-s", f"{width}x", "-o", o + "[Q=80,strip]", f],
                              {"VIPS_CONCURRENCY": "1"})
            return maxrss
        script = ("const s=require(process.env.SHARP_PATH);s.concurrency(1);s.cache(false);"
                  "s(require('fs').readFileSync(process.argv[1])).resize({width:+process.argv[2]})"
                  ".jpeg({quality:80}).toBuffer().then(()=>{})")
        _, _, maxrss = sh(["node", "-e", script, f, str(width)],
                          {"UV_THREADPOOL_SIZE": "1", "SHARP_PATH": self.a.sharp})
        return maxrss

    def node_baseline(self):
        _, _, maxrss = sh(["node", "-e", "require(process.env.SHARP_PATH)"], {"SHARP_PATH": self.a.sharp})
        return maxrss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--engine", required=True)
    p.add_argument("--vipsthumbnail", default="vipsthumbnail")
    p.add_argument("--sharp", required=True)
    p.add_argument("--sharp-bench", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--doc", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--versions", default="")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    a.tiny = os.path.join(a.work, "tiny.jpg")
    Image.new("RGB", (16, 16), (128, 64, 32)).save(a.tiny)
    b = Bench(a)
    files = sorted(glob.glob(os.path.join(a.corpus, "main", "*.jpg")))
    sizes = sorted(glob.glob(os.path.join(a.corpus, "sizes", "*.jpg")), key=lambda f: float(os.path.basename(f)[:-6]))
    md = []
    say = lambda line="": (print(line), md.append(line))  # noqa: E731

    say(f"Measured {datetime.date.today()} on {platform.machine()}, {os.cpu_count()} vCPUs "
        f"(shared, noisy), each contender pinned to one core with one worker thread.")
    say(f"Peers: {a.versions}.")
    say()
    say("Reproduce with:")
    say()
    say("```sh")
    say(a.command)
    say("```")
    say()
    say(f"### Throughput: {len(files)} photos, 1600–2000 px wide, ~256 KB, JPEG → width W → JPEG q80")
    say()
    say("Conversions per CPU-second (higher is better); SSIM against Pillow's Lanczos resize of the")
    say("same source to the same size (mean / worst over the corpus); mean output size.")
    say()
    say("| W | contender | conv/CPU-s | vs vipsthumbnail | vs sharp | SSIM mean | SSIM min | KiB |")
    say("|---|---|---|---|---|---|---|---|")
    results = {}
    for w in WIDTHS:
        r = {}
        for tool in ("vips", "sharp", "ours"):
            outdir = os.path.join(a.work, f"out-{tool}-{w}")
            shutil.rmtree(outdir, ignore_errors=True)
            speed = getattr(b, tool)(files, w, a.repeat, outdir)
            r[tool] = (speed, *b.ssim(files, outdir))
        results[w] = r
        for tool, label in (("vips", "vipsthumbnail"), ("sharp", "sharp"), ("ours", "**Resizer**")):
            speed, smean, smin, kib = r[tool]
            say(f"| {w} | {label} | {speed:.1f} | {speed / r['vips'][0]:.2f}× | {speed / r['sharp'][0]:.2f}× "
                f"| {smean:.4f} | {smin:.4f} | {kib:.1f} |")
    say()
    for w in WIDTHS:
        r = results[w]
        ok_v = r["ours"][0] / r["vips"][0] >= 3.0
        ok_s = r["ours"][0] / r["sharp"][0] >= 1.7
        say(f"- Goal at {w}: ≥3.0× vipsthumbnail {'met' if ok_v else 'NOT met'} "
            f"({r['ours'][0] / r['vips'][0]:.2f}×), ≥1.7× sharp {'met' if ok_s else 'NOT met'} "
            f"({r['ours'][0] / r['sharp'][0]:.2f}×), SSIM ≥ 0.98 {'met' if r['ours'][1] >= 0.98 else 'NOT met'} "
            f"({r['ours'][1]:.4f}).")
    say()

    say("### Peak RSS, one conversion of a 12 MP JPEG (4000×3000, 4:2:0, q90)")
    say()
    big = [f for f in sizes if os.path.basename(f).startswith("12")][0]
    say("Whole-process peak RSS (`VmHWM` / `ru_maxrss`), MiB. Node alone with sharp loaded peaks at "
        f"{b.node_baseline() / 1024:.1f} MiB.")
    say()
    say("| W | Resizer | vipsthumbnail | sharp (node) |")
    say("|---|---|---|---|")
    for w in WIDTHS:
        vals = [b.rss(t, big, w) / 1024 for t in ("ours", "vips", "sharp")]
        say(f"| {w} | **{vals[0]:.1f}** | {vals[1]:.1f} | {vals[2]:.1f} |")
    say()

    say("### Cost growth with input size (ms of CPU per conversion, q90 4:2:0 inputs)")
    say()
    say("| input | W | Resizer | vipsthumbnail | sharp |")
    say("|---|---|---|---|---|")
    for f in sizes:
        with Image.open(f) as im:
            dims = f"{im.width}×{im.height}"
        for w in WIDTHS:
            row = []
            for tool in ("ours", "vips", "sharp"):
                outdir = os.path.join(a.work, "out-size")
                speed = getattr(b, tool)([f], w, max(3, a.repeat * 2), outdir)
                row.append(1000 / speed)
            say(f"| {os.path.basename(f)[:-4].replace('mp', ' MP')} ({dims}) | {w} | **{row[0]:.1f}** "
                f"| {row[1]:.1f} | {row[2]:.1f} |")
    say()

    say("### Design experiments (Resizer only, same corpus)")
    say()
    say("Shrink-on-load rule: the JPEG is shrunk by 8, 4 or 2 in the DCT domain only while at least "
        "`residual`× is left for the Lanczos filter (libvips: 2; sharp's default fastShrinkOnLoad "
        "amounts to 1).")
    say()
    say("| W | variant | conv/CPU-s | SSIM mean | SSIM min |")
    say("|---|---|---|---|---|")
    for w in WIDTHS:
        for label, extra in (("residual 2 (default), Lanczos3", ()),
                             ("residual 1.5", ("--residual", "1.5")),
                             ("residual 1", ("--residual", "1")),
                             ("Catmull-Rom filter", ("--catmull-rom",))):
            outdir = os.path.join(a.work, "out-exp")
            shutil.rmtree(outdir, ignore_errors=True)
            speed = b.ours(files, w, a.repeat, outdir, extra)
            smean, smin, _ = b.ssim(files, outdir)
            say(f"| {w} | {label} | {speed:.1f} | {smean:.4f} | {smin:.4f} |")
    say()
    say("AVIF encode speed (rav1e via ravif, one thread): ms of CPU per conversion to a 1024 px wide "
        "AVIF q80, 5 photos.")
    say()
    say("| speed | ms per conversion | KiB |")
    say("|---|---|---|")
    for speed in (6, 7, 8, 9, 10):
        outdir = os.path.join(a.work, "out-avif")
        shutil.rmtree(outdir, ignore_errors=True)
        r = b.ours(files[:5], 1024, 1, outdir, ("--format", "avif", "--avif-speed", str(speed)))
        kib = np.mean([os.path.getsize(f) for f in glob.glob(os.path.join(outdir, "*.avif"))]) / 1024
        say(f"| {speed} | {1000 / r:.0f} | {kib:.1f} |")
    say()

    text = open(a.doc).read() if os.path.exists(a.doc) else "# Benchmarks\n"
    section = "<!-- engine:begin -->\n" + "\n".join(md) + "\n<!-- engine:end -->"
    if "<!-- engine:begin -->" in text:
        text = re.sub(r"<!-- engine:begin -->.*?<!-- engine:end -->", lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Engine\n\n" + section + "\n"
    with open(a.doc, "w") as fh:
        fh.write(text)
    print(f"\nwrote {a.doc}")


if __name__ == "__main__":
    main()
