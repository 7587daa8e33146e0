//! `openapi.yaml` and the router agree: every documented route exists and every route is
//! documented; every error code the handler can answer with is documented, under its status.

use std::collections::BTreeSet;

use resizer_api::CODES;
use resizer_core::contract::Route;
use resizer_core::transform::PARAMS;
use serde_yaml::Value;

fn spec() -> Value {
    let text = include_str!("../../../openapi.yaml");
    serde_yaml::from_str(text).expect("openapi.yaml is YAML")
}

#[test]
fn routes_match() {
    let spec = spec();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("path item") {
            let m = method.as_str().unwrap().to_ascii_uppercase();
            documented.insert((m, path.as_str().unwrap().to_owned()));
        }
    }
    let routed: BTreeSet<(String, String)> = Route::ALL
        .iter()
        .map(|r| (r.method().to_owned(), r.path().to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

/// The names of a schema's properties.
fn properties(spec: &Value, schema: &str) -> BTreeSet<String> {
    spec["components"]["schemas"][schema]["properties"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{schema} has properties"))
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_transform_parameter_is_documented_in_each_place() {
    let spec = spec();
    let params: BTreeSet<String> = PARAMS.iter().map(|p| (*p).to_owned()).collect();
    let query: BTreeSet<String> = spec["paths"]["/v1/jobs"]["post"]["parameters"]
        .as_sequence()
        .expect("parameters")
        .iter()
        .map(|p| {
            let name = p["$ref"]
                .as_str()
                .expect("$ref")
                .rsplit('/')
                .next()
                .unwrap();
            let resolved = &spec["components"]["parameters"][name];
            assert!(resolved.is_mapping(), "{name} is defined");
            resolved["name"].as_str().unwrap().to_owned()
        })
        .filter(|n| !["wait", "preset", "Idempotency-Key", "Accept"].contains(&n.as_str()))
        .collect();
    assert_eq!(query, params, "POST /v1/jobs query parameters");
    let mut upload = properties(&spec, "UploadJobRequest");
    assert!(upload.remove("upload_id") && upload.remove("wait") && upload.remove("preset"));
    assert_eq!(upload, params, "UploadJobRequest");
    assert_eq!(
        properties(&spec, "PresetRequest"),
        params,
        "PresetRequest (a preset holds any transform parameter)"
    );
    let mut echoed = properties(&spec, "Params");
    assert!(
        echoed.remove("accept"),
        "format=auto's record of the Accept header"
    );
    assert_eq!(echoed, params, "Params (the job's echo)");
}

/// The codes a response description names, as `code` in backticks.
fn codes_in(description: &str) -> Vec<String> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn error_codes_match() {
    let spec = spec();
    let responses = spec["components"]["responses"]
        .as_mapping()
        .expect("responses");
    let mut documented: BTreeSet<(u16, String)> = BTreeSet::new();
    for (_, item) in spec["paths"].as_mapping().unwrap() {
        for (_, op) in item.as_mapping().unwrap() {
            for (status, resp) in op["responses"].as_mapping().unwrap() {
                let status: u16 = status.as_str().unwrap().parse().unwrap();
                if status < 400 {
                    continue;
                }
                let r = resp["$ref"]
                    .as_str()
                    .expect("error responses are shared components");
                let name = r.rsplit('/').next().unwrap();
                let desc = responses[&Value::from(name)]["description"]
                    .as_str()
                    .expect("description");
                let codes = codes_in(desc);
                assert!(!codes.is_empty(), "{name} names no code");
                for c in codes {
                    documented.insert((status, c));
                }
            }
        }
    }
    let coded: BTreeSet<(u16, String)> = CODES.iter().map(|(s, c)| (*s, (*c).to_owned())).collect();
    assert_eq!(documented, coded);
}

#[test]
fn every_error_response_uses_the_error_schema() {
    let spec = spec();
    for (name, resp) in spec["components"]["responses"].as_mapping().unwrap() {
        let schema = &resp["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(
            schema.as_str(),
            Some("#/components/schemas/Error"),
            "{name:?}"
        );
    }
}
