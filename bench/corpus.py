#!/usr/bin/env python3
"""Builds the benchmark corpus from real photographs shipped in Debian wallpaper packages.

Each source photo is scaled (Pillow, Lanczos) to a width between 1600 and 2000 px and saved as a
baseline 4:2:0 JPEG whose quality is searched so the file is close to 256 KB, like photos
served on the web. Also writes the size-growth set (0.25, 1, 4 and 12 MP, 4:2:0, q90) from the
largest photo.

usage: corpus.py OUT_DIR SRC...
"""
import io
import os
import sys

from PIL import Image

TARGET = 256 * 1024
WIDTHS = [1600, 1700, 1800, 1900, 2000]


def jpeg(img, q):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q, subsampling=2, optimize=False)
    return buf.getvalue()


def main():
    out, srcs = sys.argv[1], sys.argv[2:]
    os.makedirs(os.path.join(out, "main"), exist_ok=True)
    os.makedirs(os.path.join(out, "sizes"), exist_ok=True)
    largest = None
    for i, src in enumerate(srcs):
        img = Image.open(src).convert("RGB")
        if largest is None or img.width * img.height > largest.width * largest.height:
            largest = img
        w = WIDTHS[i % len(WIDTHS)]
        h = round(img.height * w / img.width)
        small = img.resize((w, h), Image.LANCZOS)
        lo, hi, best = 30, 98, None
        while lo <= hi:
            q = (lo + hi) // 2
            data = jpeg(small, q)
            if len(data) <= TARGET:
                best, lo = data, q + 1
            else:
                hi = q - 1
        best = best or jpeg(small, 30)
        name = os.path.splitext(os.path.basename(src))[0]
        if name[0].isdigit():  # plasma ships NAME/contents/images/WxH.jpg
            name = src.split(os.sep)[-4]
        with open(os.path.join(out, "main", f"{i:02d}_{name}.jpg"), "wb") as f:
            f.write(best)
        print(f"main/{i:02d}_{name}.jpg {w}x{h} {len(best)} bytes")
    # Cost growth with input size: 0.25, 1, 4 and 12 MP, 4:3 crops of the largest photo.
    for mp in (0.25, 1, 4, 12):
        h = int((mp * 1e6 * 3 / 4) ** 0.5)
        w = int(h * 4 / 3)
        scale = max(w / largest.width, h / largest.height)
        big = largest.resize((round(largest.width * scale) + 1, round(largest.height * scale) + 1), Image.LANCZOS)
        crop = big.crop(((big.width - w) // 2, (big.height - h) // 2, (big.width - w) // 2 + w, (big.height - h) // 2 + h))
        data = jpeg(crop, 90)
        name = f"{mp:g}mp.jpg"
        with open(os.path.join(out, "sizes", name), "wb") as f:
            f.write(data)
        print(f"sizes/{name} {w}x{h} {len(data)} bytes")


if __name__ == "__main__":
    main()
