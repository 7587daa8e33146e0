//! The deployed binary itself: a cold start without its configuration fails at once, naming what
//! is missing, in the JSON log Lambda ships to CloudWatch (never later, on the first event).
//! (This test also makes `cargo test` build the binary that the local stack deploys.)

use std::process::Command;

#[test]
fn a_cold_start_without_configuration_fails_and_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_resizer-sweep"))
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
