//! One source of truth for the functions' settings: every setting's template parameter has
//! exactly the default and range the functions accept (`resizer_app::settings::SETTINGS`), and
//! every function gets it under the variable it reads. A value CloudFormation allows can then
//! never fail a cold start.

use resizer_app::settings::CORS_ALLOWED_ORIGINS_ENV;
use resizer_app::{SETTINGS, STAGE_ENV, Settings};
use serde_yaml::Value;

const TEMPLATE: &str = include_str!("../../../template.yaml");

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

#[test]
fn template_parameters_are_the_settings_ranges() {
    let t: Value = serde_yaml::from_str(TEMPLATE).expect("template.yaml is YAML");
    let params = &t["Parameters"];
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let mut problems = Vec::new();
    for s in SETTINGS {
        let p = &params[s.parameter];
        if p.is_null() {
            problems.push(format!("no parameter {} (sets {})", s.parameter, s.env));
            continue;
        }
        if p["Type"].as_str() != Some("Number") {
            problems.push(format!("{} is not a Number", s.parameter));
        }
        for (field, want) in [
            ("Default", s.default),
            ("MinValue", s.min),
            ("MaxValue", s.max),
        ] {
            let got = number(&p[field]);
            if got != Some(want) {
                problems.push(format!(
                    "{}.{field} is {got:?}; {} accepts {}..={} (default {})",
                    s.parameter, s.env, s.min, s.max, s.default
                ));
            }
        }
        if reference(&env[s.env]) != Some(s.parameter) {
            problems.push(format!(
                "the functions' {} is not !Ref {}",
                s.env, s.parameter
            ));
        }
    }
    if reference(&env[STAGE_ENV]) != Some("Stage") {
        problems.push("the functions' STAGE is not !Ref Stage".into());
    }
    // The CORS origins: a string the functions parse; its default must be one they accept.
    if reference(&env[CORS_ALLOWED_ORIGINS_ENV]) != Some("CorsAllowedOrigins") {
        problems.push("the functions' CORS_ALLOWED_ORIGINS is not !Ref CorsAllowedOrigins".into());
    }
    let default = params["CorsAllowedOrigins"]["Default"]
        .as_str()
        .map(str::to_owned);
    let parsed = Settings::from_lookup(|k| {
        (k == CORS_ALLOWED_ORIGINS_ENV)
            .then(|| default.clone())
            .flatten()
    });
    if default.is_none() || parsed.is_err() {
        problems.push(format!(
            "CorsAllowedOrigins' default {default:?} is not accepted: {parsed:?}"
        ));
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));
}
