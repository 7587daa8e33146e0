//! Presets: a customer's named transforms. A preset holds transform parameters exactly as a job
//! takes them (validated when saved, with a job's errors); a job names one with `preset=<name>`,
//! and the parameters the job gives itself override the preset's, name by name.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::transform::{ParamError, TransformSpec};

/// The most presets one customer may keep.
pub const MAX_PRESETS: usize = 100;
/// The longest preset name.
pub const MAX_NAME_LEN: usize = 64;

/// A preset's name: 1 to 64 of `A-Z a-z 0-9 _ -`, case-sensitive (it is a URL path segment and
/// a query value, so it needs no escaping in either).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PresetName(String);

impl PresetName {
    pub fn parse(value: &str) -> Result<Self, ParamError> {
        let ok = !value.is_empty()
            && value.len() <= MAX_NAME_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(ParamError::new(
                "preset",
                format!(
                    "a preset name is 1 to {MAX_NAME_LEN} letters, digits, '_' or '-', got {:?}",
                    crate::shorten(value, 40)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PresetName {
    type Error = ParamError;

    fn try_from(value: String) -> Result<Self, ParamError> {
        Self::parse(&value)
    }
}

impl From<PresetName> for String {
    fn from(name: PresetName) -> String {
        name.0
    }
}

impl fmt::Display for PresetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A saved preset: its owner, its name and its parameters as given (a job's parameter names,
/// values as strings), valid together as a job's transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    pub customer_id: String,
    pub name: PresetName,
    pub params: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A preset's parameters, checked as a job's would be (the same messages): unknown, repeated and
/// invalid parameters are refused, and so is `preset` itself (a preset does not name another).
/// Returns them by name, values trimmed.
pub fn validate_params<'a, I>(pairs: I) -> Result<BTreeMap<String, String>, ParamError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let pairs: Vec<(&str, &str)> = pairs.into_iter().collect();
    if pairs.iter().any(|(name, _)| *name == "preset") {
        return Err(ParamError::new(
            "preset",
            "a preset cannot name another preset",
        ));
    }
    // Unknown, repeated and invalid parameters: a job's own checks, in a job's order.
    TransformSpec::from_pairs(pairs.iter().copied())?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

impl Preset {
    /// The transform of a job that names this preset and gives `own` parameters besides: the
    /// preset's parameters with the job's replacing those of the same name. Errors name the
    /// preset (its parameters take part in every one).
    pub fn apply<'a, I>(&self, own: I) -> Result<TransformSpec, ParamError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut merged: BTreeMap<&str, &str> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut own_names: Vec<&str> = Vec::new();
        for (name, value) in own {
            if own_names.contains(&name) {
                return Err(ParamError::new(
                    name,
                    format!("{} is given more than once", crate::shorten(name, 40)),
                ));
            }
            own_names.push(name);
            merged.insert(name, value);
        }
        TransformSpec::from_pairs(merged).map_err(|e| {
            ParamError::new(
                e.param,
                format!("with preset {:?}: {}", self.name.as_str(), e.message),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{Fit, Format};

    fn preset(pairs: &[(&str, &str)]) -> Preset {
        let now = OffsetDateTime::UNIX_EPOCH;
        Preset {
            customer_id: "cus_1".into(),
            name: PresetName::parse("thumb").unwrap(),
            params: validate_params(pairs.iter().copied()).unwrap(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn names_are_short_url_safe_words() {
        for good in ["a", "thumb_2x", "Hero-Wide", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(PresetName::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "a/b", "é", "a.b", &"x".repeat(MAX_NAME_LEN + 1)] {
            let e = PresetName::parse(bad).unwrap_err();
            assert_eq!(e.param, "preset");
            assert!(e.message.contains("1 to 64"), "{}", e.message);
        }
    }

    #[test]
    fn saving_checks_the_parameters_as_a_job_would() {
        let e = validate_params([("width", "0")]).unwrap_err();
        let job = TransformSpec::from_pairs([("width", "0")]).unwrap_err();
        assert_eq!(e, job, "the same error as a job's");

        let e = validate_params([("fit", "cover")]).unwrap_err();
        assert_eq!(e.param, "width", "width or height is required");
        let e = validate_params([("wdth", "3")]).unwrap_err();
        assert!(e.message.contains("unknown parameter"), "{}", e.message);
        let e = validate_params([("width", "3"), ("width", "4")]).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
        let e = validate_params([("width", "3"), ("preset", "x")]).unwrap_err();
        assert_eq!(e.param, "preset");

        let ok = validate_params([("width", " 300 "), ("format", "webp")]).unwrap();
        assert_eq!(ok["width"], "300", "values are kept trimmed");
        assert_eq!(
            ok.len(),
            2,
            "only what was given is kept: defaults stay defaults"
        );
    }

    #[test]
    fn a_jobs_own_parameters_override_the_presets() {
        let p = preset(&[("width", "300"), ("fit", "cover"), ("format", "webp")]);

        let spec = p.apply([]).unwrap();
        assert_eq!(spec.width(), Some(300));
        assert_eq!(spec.fit(), Fit::Cover);
        assert_eq!(spec.format(), Some(Format::Webp));

        let spec = p.apply([("width", "640"), ("quality", "60")]).unwrap();
        assert_eq!(spec.width(), Some(640), "the job's width wins");
        assert_eq!(
            spec.quality().get(),
            60,
            "and adds what the preset leaves out"
        );
        assert_eq!(
            spec.format(),
            Some(Format::Webp),
            "the rest is the preset's"
        );
    }

    #[test]
    fn an_error_of_the_combination_names_the_preset() {
        let p = preset(&[("width", "300"), ("fit", "cover"), ("position", "entropy")]);
        let e = p.apply([("fit", "contain")]).unwrap_err();
        assert_eq!(e.param, "position");
        assert!(
            e.message
                .starts_with("with preset \"thumb\": position=entropy needs fit=cover"),
            "{}",
            e.message
        );
        let e = p.apply([("width", "1"), ("width", "2")]).unwrap_err();
        assert!(e.message.contains("more than once"), "{}", e.message);
    }
}
