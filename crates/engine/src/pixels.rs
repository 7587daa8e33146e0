//! The pixel buffers the stages pass along: decoded bitmaps, JPEG YCbCr planes as decoded and as
//! resized.

/// An interleaved 8-bit image: 1 (grey), 3 (RGB) or 4 (RGBA, straight alpha) channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub data: Vec<u8>,
    pub w: usize,
    pub h: usize,
    pub ch: usize,
}

impl Bitmap {
    pub fn new(data: Vec<u8>, w: usize, h: usize, ch: usize) -> Self {
        debug_assert_eq!(data.len(), w * h * ch);
        Self { data, w, h, ch }
    }
}

/// JPEG YCbCr planes in libjpeg-turbo's layout: Y (`yw × yh`, padded to the MCU) then Cb then Cr
/// (each `cw × chh`), in one buffer.
#[derive(Debug, Clone)]
pub struct Yuv {
    pub buf: Vec<u8>,
    /// The image's luma size (the Y plane may be padded beyond it).
    pub w: usize,
    pub h: usize,
    pub yw: usize,
    pub yh: usize,
    pub cw: usize,
    pub chh: usize,
    /// Chroma subsampling factors (2, 2 for 4:2:0).
    pub sx: usize,
    pub sy: usize,
}

impl Yuv {
    pub fn y(&self) -> &[u8] {
        &self.buf[..self.yw * self.yh]
    }
    pub fn u(&self) -> &[u8] {
        let o = self.yw * self.yh;
        &self.buf[o..o + self.cw * self.chh]
    }
    pub fn v(&self) -> &[u8] {
        let o = self.yw * self.yh + self.cw * self.chh;
        &self.buf[o..o + self.cw * self.chh]
    }
}

#[derive(Debug, Clone)]
pub enum Pixels {
    Yuv(Yuv),
    Bitmap(Bitmap),
}

impl Pixels {
    pub fn width(&self) -> usize {
        match self {
            Pixels::Yuv(y) => y.w,
            Pixels::Bitmap(b) => b.w,
        }
    }
    pub fn height(&self) -> usize {
        match self {
            Pixels::Yuv(y) => y.h,
            Pixels::Bitmap(b) => b.h,
        }
    }
}

/// Resized YCbCr planes: luma `w × h`, chroma `cw × chh`.
pub struct Planes {
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    pub w: usize,
    pub h: usize,
    pub cw: usize,
    pub chh: usize,
}
