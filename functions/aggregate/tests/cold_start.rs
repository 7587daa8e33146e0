//! The deployed binaries themselves: a cold start without its configuration fails at once, naming
//! what is missing, in the JSON log Lambda ships to CloudWatch (never later, on the first event).
//! (This test also makes `cargo test` build the binaries that the local stack deploys.)

use std::process::Command;

fn fails_naming_the_variable(binary: &str) {
    let out = Command::new(binary)
        .env_clear()
        .output()
        .expect("run the binary");
    assert!(!out.status.success(), "it must not start");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("cold start failed"))
        .unwrap_or_else(|| panic!("no cold-start error line in: {text}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(json["level"], "ERROR", "{line}");
    assert!(
        json["error"].as_str().is_some_and(
            |e| e.contains("environment variable STAGING_BUCKET is required but not set")
        ),
        "{line}"
    );
}

#[test]
fn a_cold_start_without_configuration_fails_and_names_the_variable() {
    fails_naming_the_variable(env!("CARGO_BIN_EXE_resizer-aggregate"));
}

#[test]
fn the_slice_function_too() {
    fails_naming_the_variable(env!("CARGO_BIN_EXE_resizer-aggregate-slice"));
}
