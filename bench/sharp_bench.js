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
  // Warm up (first-call initialisation of libvips and its codecs).
  await sharp(inputs[0][1]).resize({ width: Number(width) }).jpeg({ quality: 80 }).toBuffer();
  const start = process.cpuUsage();
  let count = 0;
  const outputs = new Map();
  for (let r = 0; r < Number(repeat); r++) {
    for (const [f, buf] of inputs) {
      const out = await sharp(buf).resize({ width: Number(width) }).jpeg({ quality: 80 }).toBuffer();
      outputs.set(f, out);
      count++;
    }
  }
  const used = process.cpuUsage(start);
  const secs = (used.user + used.system) / 1e6;
  for (const [f, out] of outputs) {
    fs.writeFileSync(path.join(outdir, path.basename(f)), out);
  }
  console.log(`conversions_per_cpu_second ${(count / secs).toFixed(2)}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
