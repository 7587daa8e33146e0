//! Transform parameters: parse, don't validate.
//!
//! A [`TransformSpec`] can only be built through [`TransformSpec::from_pairs`] (query string or
//! JSON fields turned into string pairs) or by deserialising a stored spec, and both paths apply the
//! same rules. Every rejection is a [`ParamError`] naming the parameter and the allowed values, e.g.
//! `width must be 1..=8192, got 0`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Largest `width` or `height` a customer may ask for.
pub const MAX_DIMENSION: u32 = 8192;
/// Quality used when the request does not say.
pub const DEFAULT_QUALITY: u8 = 80;

/// The parameters [`TransformSpec::from_pairs`] accepts.
pub const PARAMS: &[&str] = &[
    "width",
    "height",
    "fit",
    "format",
    "quality",
    "enlarge",
    "lossless",
    "background",
];

/// A rejected parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// The offending parameter's name (`width`, `fit`, …), or `params` for cross-field rules.
    pub param: String,
    /// A message for humans that names the parameter, the allowed values and what was given.
    pub message: String,
}

impl ParamError {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// An output side length in pixels, 1..=8192.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Dimension(u32);

impl Dimension {
    pub fn new(param: &str, value: u32) -> Result<Self, ParamError> {
        if (1..=MAX_DIMENSION).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ParamError::new(
                param,
                format!("{param} must be 1..={MAX_DIMENSION}, got {value}"),
            ))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Dimension {
    type Error = ParamError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new("dimension", value)
    }
}

impl From<Dimension> for u32 {
    fn from(d: Dimension) -> u32 {
        d.0
    }
}

/// Encoder quality, 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Quality(u8);

impl Quality {
    pub fn new(value: u32) -> Result<Self, ParamError> {
        if (1..=100).contains(&value) {
            Ok(Self(value as u8))
        } else {
            Err(ParamError::new(
                "quality",
                format!("quality must be 1..=100, got {value}"),
            ))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for Quality {
    fn default() -> Self {
        Self(DEFAULT_QUALITY)
    }
}

impl TryFrom<u8> for Quality {
    type Error = ParamError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(u32::from(value))
    }
}

impl From<Quality> for u8 {
    fn from(q: Quality) -> u8 {
        q.0
    }
}

/// How the image is fitted into the requested box. The meanings are sharp's, with centre gravity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box exactly, preserving aspect ratio, cropping the overflow around the centre.
    Cover,
    /// Fit inside the box, preserving aspect ratio, letterboxing the rest with `background`.
    Contain,
    /// Fill the box exactly, ignoring aspect ratio.
    Fill,
    /// Preserve aspect ratio; as large as possible while both sides are ≤ the box.
    #[default]
    Inside,
    /// Preserve aspect ratio; as small as possible while both sides are ≥ the box.
    Outside,
}

impl Fit {
    pub const ALL: [Fit; 5] = [
        Fit::Cover,
        Fit::Contain,
        Fit::Fill,
        Fit::Inside,
        Fit::Outside,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Cover => "cover",
            Fit::Contain => "contain",
            Fit::Fill => "fill",
            Fit::Inside => "inside",
            Fit::Outside => "outside",
        }
    }

    fn parse(value: &str) -> Result<Self, ParamError> {
        Fit::ALL
            .into_iter()
            .find(|f| f.as_str() == value)
            .ok_or_else(|| {
                ParamError::new(
                    "fit",
                    format!(
                        "fit must be one of cover, contain, fill, inside, outside, got {:?}",
                        truncate(value)
                    ),
                )
            })
    }
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image format, as read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Gif,
    Avif,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Gif => "gif",
            Format::Avif => "avif",
        }
    }

    /// The MIME type, as written in `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Gif => "image/gif",
            Format::Avif => "image/avif",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            other => other.as_str(),
        }
    }

    /// Formats accepted as input.
    pub fn is_input(self) -> bool {
        !matches!(self, Format::Avif)
    }

    /// Formats that can be written.
    pub fn is_output(self) -> bool {
        !matches!(self, Format::Gif)
    }

    /// Parses a MIME type (`image/jpeg`, `image/png`, …), ignoring parameters after `;`.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Format::Jpeg),
            "image/png" => Some(Format::Png),
            "image/webp" => Some(Format::Webp),
            "image/gif" => Some(Format::Gif),
            "image/avif" => Some(Format::Avif),
            _ => None,
        }
    }

    /// The output format used when the request names none: the input's, except GIF becomes PNG.
    pub fn default_output_for(input: Format) -> Format {
        match input {
            Format::Gif => Format::Png,
            other => other,
        }
    }

    fn parse_output(value: &str) -> Result<Self, ParamError> {
        match value {
            "jpeg" | "jpg" => Ok(Format::Jpeg),
            "png" => Ok(Format::Png),
            "webp" => Ok(Format::Webp),
            "avif" => Ok(Format::Avif),
            _ => Err(ParamError::new(
                "format",
                format!(
                    "format must be one of jpeg, png, webp, avif, got {:?}",
                    truncate(value)
                ),
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An opaque RGB colour, used to flatten alpha and to fill `contain`'s letterbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rgb(pub [u8; 3]);

impl Rgb {
    pub const WHITE: Rgb = Rgb([255, 255, 255]);

    fn parse(value: &str) -> Result<Self, ParamError> {
        let hex = value.strip_prefix('#').unwrap_or(value);
        let bad = || {
            ParamError::new(
                "background",
                format!(
                    "background must be a 6-digit hex RGB colour such as ffffff, got {:?}",
                    truncate(value)
                ),
            )
        };
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
        Ok(Rgb([byte(0)?, byte(2)?, byte(4)?]))
    }
}

impl fmt::Display for Rgb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "{r:02x}{g:02x}{b:02x}")
    }
}

impl Serialize for Rgb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rgb {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rgb::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated transform: what to do with one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSpec", into = "RawSpec")]
pub struct TransformSpec {
    width: Option<Dimension>,
    height: Option<Dimension>,
    fit: Fit,
    format: Option<Format>,
    quality: Quality,
    enlarge: bool,
    lossless: bool,
    background: Rgb,
}

impl TransformSpec {
    /// Parses `name=value` pairs (a query string, or JSON fields rendered as strings).
    ///
    /// Unknown names, repeated names and empty values are errors: a typo must not silently turn
    /// into a default.
    pub fn from_pairs<'a, I>(pairs: I) -> Result<Self, ParamError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut raw = RawSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            let Some(&known) = PARAMS.iter().find(|p| **p == name) else {
                return Err(ParamError::new(
                    truncate(name),
                    format!(
                        "unknown parameter {:?}; allowed: {}",
                        truncate(name),
                        PARAMS.join(", ")
                    ),
                ));
            };
            if seen.contains(&known) {
                return Err(ParamError::new(
                    known,
                    format!("{known} is given more than once"),
                ));
            }
            seen.push(known);
            let value = value.trim();
            match known {
                "width" => raw.width = Some(parse_u32("width", value, "1..=8192")?),
                "height" => raw.height = Some(parse_u32("height", value, "1..=8192")?),
                "fit" => raw.fit = Some(Fit::parse(value)?),
                "format" => raw.format = Some(Format::parse_output(value)?),
                "quality" => raw.quality = Some(parse_u32("quality", value, "1..=100")?),
                "enlarge" => raw.enlarge = Some(parse_bool("enlarge", value)?),
                "lossless" => raw.lossless = Some(parse_bool("lossless", value)?),
                "background" => raw.background = Some(Rgb::parse(value)?),
                _ => unreachable!("every name in PARAMS is handled"),
            }
        }
        Self::try_from(raw)
    }

    pub fn width(&self) -> Option<u32> {
        self.width.map(Dimension::get)
    }

    pub fn height(&self) -> Option<u32> {
        self.height.map(Dimension::get)
    }

    pub fn fit(&self) -> Fit {
        self.fit
    }

    /// The requested output format, if any. See [`TransformSpec::output_format`].
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The format the output will have for an input of format `input`.
    pub fn output_format(&self, input: Format) -> Format {
        self.format
            .unwrap_or_else(|| Format::default_output_for(input))
    }

    pub fn quality(&self) -> Quality {
        self.quality
    }

    pub fn enlarge(&self) -> bool {
        self.enlarge
    }

    /// Lossless WebP (PNG is always lossless).
    pub fn lossless(&self) -> bool {
        self.lossless
    }

    pub fn background(&self) -> Rgb {
        self.background
    }

    /// A spec with only a width, the rest defaulted. Handy in tests and benchmarks.
    pub fn with_width(width: u32) -> Result<Self, ParamError> {
        let w = width.to_string();
        Self::from_pairs([("width", w.as_str())])
    }
}

/// The wire form of a spec: what is stored in the jobs table and shown in the job resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fit: Option<Fit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quality: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enlarge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lossless: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    background: Option<Rgb>,
}

impl TryFrom<RawSpec> for TransformSpec {
    type Error = ParamError;

    fn try_from(raw: RawSpec) -> Result<Self, ParamError> {
        let width = raw.width.map(|w| Dimension::new("width", w)).transpose()?;
        let height = raw
            .height
            .map(|h| Dimension::new("height", h))
            .transpose()?;
        if width.is_none() && height.is_none() {
            return Err(ParamError::new(
                "width",
                "width or height is required (each 1..=8192)",
            ));
        }
        let format = raw.format;
        if let Some(f) = format
            && !f.is_output()
        {
            return Err(ParamError::new(
                "format",
                format!("format must be one of jpeg, png, webp, avif, got {f:?}"),
            ));
        }
        let lossless = raw.lossless.unwrap_or(false);
        if lossless && !matches!(format, Some(Format::Webp) | Some(Format::Png)) {
            return Err(ParamError::new(
                "lossless",
                "lossless=true needs format=webp (PNG is always lossless)",
            ));
        }
        Ok(Self {
            width,
            height,
            fit: raw.fit.unwrap_or_default(),
            format,
            quality: raw
                .quality
                .map(Quality::new)
                .transpose()?
                .unwrap_or_default(),
            enlarge: raw.enlarge.unwrap_or(false),
            lossless,
            background: raw.background.unwrap_or(Rgb::WHITE),
        })
    }
}

impl From<TransformSpec> for RawSpec {
    fn from(s: TransformSpec) -> Self {
        RawSpec {
            width: s.width(),
            height: s.height(),
            fit: Some(s.fit),
            format: s.format,
            quality: Some(u32::from(s.quality.get())),
            enlarge: Some(s.enlarge),
            lossless: Some(s.lossless),
            background: Some(s.background),
        }
    }
}

fn parse_u32(param: &str, value: &str, range: &str) -> Result<u32, ParamError> {
    let bad = || {
        ParamError::new(
            param,
            format!(
                "{param} must be an integer {range}, got {:?}",
                truncate(value)
            ),
        )
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // All digits: an overflow is simply "too large", reported with the range.
    match value.parse::<u64>() {
        Ok(v) => Ok(u32::try_from(v).unwrap_or(u32::MAX)),
        Err(_) => Ok(u32::MAX),
    }
}

fn parse_bool(param: &str, value: &str) -> Result<bool, ParamError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ParamError::new(
            param,
            format!("{param} must be true or false, got {:?}", truncate(value)),
        )),
    }
}

/// Keeps echoed user input short in error messages.
fn truncate(value: &str) -> String {
    crate::shorten(value, 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<TransformSpec, ParamError> {
        TransformSpec::from_pairs(q.iter().copied())
    }

    #[test]
    fn defaults() {
        let s = parse(&[("width", "400")]).unwrap();
        assert_eq!(s.width(), Some(400));
        assert_eq!(s.height(), None);
        assert_eq!(s.fit(), Fit::Inside);
        assert_eq!(s.format(), None);
        assert_eq!(s.quality().get(), 80);
        assert!(!s.enlarge());
        assert!(!s.lossless());
        assert_eq!(s.background(), Rgb::WHITE);
        assert_eq!(s.output_format(Format::Gif), Format::Png);
        assert_eq!(s.output_format(Format::Webp), Format::Webp);
    }

    #[test]
    fn everything() {
        let s = parse(&[
            ("width", "800"),
            ("height", "600"),
            ("fit", "cover"),
            ("format", "webp"),
            ("quality", "55"),
            ("enlarge", "true"),
            ("lossless", "1"),
            ("background", "#00ff7f"),
        ])
        .unwrap();
        assert_eq!((s.width(), s.height()), (Some(800), Some(600)));
        assert_eq!(s.fit(), Fit::Cover);
        assert_eq!(s.format(), Some(Format::Webp));
        assert_eq!(s.quality().get(), 55);
        assert!(s.enlarge() && s.lossless());
        assert_eq!(s.background(), Rgb([0, 255, 127]));
    }

    #[test]
    fn precise_messages() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("width", "0")], "width", "width must be 1..=8192, got 0"),
            (
                &[("width", "8193")],
                "width",
                "width must be 1..=8192, got 8193",
            ),
            (
                &[("height", "99999")],
                "height",
                "height must be 1..=8192, got 99999",
            ),
            (
                &[("width", "abc")],
                "width",
                "width must be an integer 1..=8192, got \"abc\"",
            ),
            (
                &[("width", "-1")],
                "width",
                "width must be an integer 1..=8192, got \"-1\"",
            ),
            (
                &[("width", "99999999999999999999999")],
                "width",
                "width must be 1..=8192, got 4294967295",
            ),
            (
                &[("width", "")],
                "width",
                "width must be an integer 1..=8192, got \"\"",
            ),
            (
                &[("width", "10"), ("quality", "0")],
                "quality",
                "quality must be 1..=100, got 0",
            ),
            (
                &[("width", "10"), ("quality", "101")],
                "quality",
                "quality must be 1..=100, got 101",
            ),
            (
                &[("width", "10"), ("fit", "stretch")],
                "fit",
                "fit must be one of cover, contain, fill, inside, outside, got \"stretch\"",
            ),
            (
                &[("width", "10"), ("format", "tiff")],
                "format",
                "format must be one of jpeg, png, webp, avif, got \"tiff\"",
            ),
            (
                &[("width", "10"), ("enlarge", "yes")],
                "enlarge",
                "enlarge must be true or false, got \"yes\"",
            ),
            (
                &[("width", "10"), ("background", "red")],
                "background",
                "background must be a 6-digit hex RGB colour such as ffffff, got \"red\"",
            ),
            (&[], "width", "width or height is required (each 1..=8192)"),
            (
                &[("fit", "cover")],
                "width",
                "width or height is required (each 1..=8192)",
            ),
            (
                &[("width", "10"), ("width", "20")],
                "width",
                "width is given more than once",
            ),
            (
                &[("width", "10"), ("lossless", "true")],
                "lossless",
                "lossless=true needs format=webp (PNG is always lossless)",
            ),
            (
                &[("width", "10"), ("format", "jpeg"), ("lossless", "true")],
                "lossless",
                "lossless=true needs format=webp (PNG is always lossless)",
            ),
        ];
        for (q, param, msg) in cases {
            let err = parse(q).unwrap_err();
            assert_eq!(
                (err.param.as_str(), err.message.as_str()),
                (*param, *msg),
                "{q:?}"
            );
        }
    }

    #[test]
    fn unknown_parameter_lists_the_allowed_ones() {
        let err = parse(&[("width", "10"), ("widht", "20")]).unwrap_err();
        assert_eq!(err.param, "widht");
        assert!(
            err.message
                .starts_with("unknown parameter \"widht\"; allowed: width, height")
        );
    }

    #[test]
    fn echoed_input_is_truncated() {
        let long = "x".repeat(1000);
        let err = parse(&[("width", "10"), ("fit", &long)]).unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let s = parse(&[("height", "300"), ("fit", "contain"), ("format", "jpg")]).unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"height": 300, "fit": "contain", "format": "jpeg", "quality": 80,
                "enlarge": false, "lossless": false, "background": "ffffff"})
        );
        let back: TransformSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
        let bad = serde_json::from_value::<TransformSpec>(serde_json::json!({"width": 0}));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("width must be 1..=8192, got 0")
        );
        let unknown =
            serde_json::from_value::<TransformSpec>(serde_json::json!({"width": 5, "x": 1}));
        assert!(unknown.is_err());
    }

    #[test]
    fn mime_types() {
        assert_eq!(Format::from_mime("image/jpeg"), Some(Format::Jpeg));
        assert_eq!(
            Format::from_mime("IMAGE/PNG; charset=binary"),
            Some(Format::Png)
        );
        assert_eq!(Format::from_mime("text/plain"), None);
        assert_eq!(Format::Jpeg.extension(), "jpg");
        assert!(!Format::Gif.is_output() && !Format::Avif.is_input());
    }
}
