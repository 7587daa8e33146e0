// Times sharp on a list of JPEGs: node sharp_bench.js WIDTH REPEAT OUTDIR FILE...
// One libvips thread (sharp.concurrency(1)), no cache, conversions run one after another.
// Prints `conversions_per_cpu_second N` from process.cpuUsage() (all threads, user+system)
// around the timed loop only, like the engine's thread CPU time inside process().
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require(process.env.SHARP_PATH || 'sharp');

async function main() {
  const [width, repeat, outdir, ...files] = process.argv.slice(2);
  sharp.concurrency(1);
  sharp.cache(false);
  sharp.simd(true);
  const inputs = files.map((f) => [f, fs.readFileSync(f)]);
  // SHARP_FORMAT=png gives lossless outputs for the resize-quality (SSIM) measurement.
  const png = process.env.SHARP_FORMAT === 'png';
  const encode = (img) => (png ? img.png() : img.jpeg({ quality: 80 }));
  // Warm up (first-call initialisation of libvips and its codecs).
  await encode(sharp(inputs[0][1]).resize({ width: Number(width) })).toBuffer();
  const start = process.cpuUsage();
  let count = 0;
  const outputs = new Map();
  for (let r = 0; r < Number(repeat); r++) {
    for (const [f, buf] of inputs) {
      const out = await encode(sharp(buf).resize({ width: Number(width) })).toBuffer();
      outputs.set(f, out);
      count++;
    }
  }
  const used = process.cpuUsage(start);
  const secs = (used.user + used.system) / 1e6;
  for (const [f, out] of outputs) {
    const name = path.basename(f).replace(/\.jpg$/, png ? '.png' : '.jpg');
    fs.writeFileSync(path.join(outdir, name), out);
  }
  console.log(`conversions_per_cpu_second ${(count / secs).toFixed(2)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
