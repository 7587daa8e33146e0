//! Resizer's domain, free of AWS, of codecs and of async.
//!
//! - [`contract`]: the HTTP API's route table and resources, shared by the api and the CLI.
//! - [`transform`]: the transform parameters a customer sends, parsed into validated newtypes.
//! - [`image`]: what is known of an image without decoding it (the header probe, the limits, the
//!   completeness check, the geometry of a transform) and [`image::ImageError`].
//! - [`job`]: job identity, states and the forward-only state machine.
//! - [`key`]: API key format, generation and constant-time verification.
//! - [`preset`]: a customer's named transforms, their names and how a job applies one.
//! - [`usage`]: raw usage records, their keys, and the rollup maths.

pub mod contract;
pub mod image;
pub mod job;
pub mod key;
pub mod preset;
pub mod transform;
pub mod usage;

/// `value` cut to at most `max` characters, with `…` where it was cut: for echoing a caller's input
/// in an error message.
pub fn shorten(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        value.to_owned()
    } else {
        let mut s: String = value.chars().take(max).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shorten_cuts_at_characters_and_says_so() {
        assert_eq!(super::shorten("abc", 3), "abc");
        assert_eq!(super::shorten("abcd", 3), "abc…");
        assert_eq!(super::shorten("ééé", 2), "éé…");
    }
}
