//! API keys and customers.
//!
//! A key reads `rsz_<key_id>_<secret>`. The key id is public (it names the record); only the
//! SHA-256 of the secret is stored, and presented secrets are compared in constant time.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

const PREFIX: &str = "rsz_";
const KEY_ID_LEN: usize = 16;
const SECRET_LEN: usize = 40;
const CUSTOMER_ID_LEN: usize = 16;
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A presented or freshly generated API key. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    key_id: String,
    secret: String,
}

impl ApiKey {
    /// Generates a new key: a 16-character key id and a 40-character secret (about 238 bits).
    pub fn generate() -> Self {
        Self {
            key_id: random_string(LOWER_ALNUM, KEY_ID_LEN),
            secret: random_string(ALNUM, SECRET_LEN),
        }
    }

    /// Parses a presented key. Any deviation from the format is `None`: the caller answers 401
    /// without touching the database.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(PREFIX)?;
        let (key_id, secret) = rest.split_once('_')?;
        let ok = key_id.len() == KEY_ID_LEN
            && key_id.bytes().all(|b| LOWER_ALNUM.contains(&b))
            && secret.len() == SECRET_LEN
            && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self {
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The hex SHA-256 of the secret: what the api-keys table stores.
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// Whether this key's secret matches a stored hash, in constant time.
    pub fn verify(&self, stored_hash_hex: &str) -> bool {
        let Ok(stored) = hex::decode(stored_hash_hex) else {
            return false;
        };
        let presented = Sha256::digest(self.secret.as_bytes());
        stored.len() == presented.len() && bool::from(presented.as_slice().ct_eq(&stored))
    }

    /// The full key, to be shown exactly once when it is created.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}_{}", self.key_id, self.secret)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Whether a key or a customer may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// The api-keys table's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key_id: String,
    pub customer_id: String,
    pub secret_hash: String,
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl KeyRecord {
    pub fn new(key: &ApiKey, customer_id: &str, now: OffsetDateTime) -> Self {
        Self {
            key_id: key.key_id().to_owned(),
            customer_id: customer_id.to_owned(),
            secret_hash: key.secret_hash(),
            status: KeyStatus::Active,
            created_at: now,
            revoked_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatus {
    Active,
    Disabled,
}

impl CustomerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CustomerStatus::Active => "active",
            CustomerStatus::Disabled => "disabled",
        }
    }
}

/// The customers table's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub status: CustomerStatus,
    /// Jobs allowed per calendar month (UTC); `None` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_job_quota: Option<u64>,
    /// Unfinished jobs this customer may have at once; `None` is the stack's
    /// `CustomerMaxOpenJobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_jobs: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Customer {
    pub fn new(name: &str, now: OffsetDateTime) -> Self {
        Self {
            customer_id: generate_customer_id(),
            name: name.to_owned(),
            status: CustomerStatus::Active,
            monthly_job_quota: None,
            max_open_jobs: None,
            created_at: now,
        }
    }
}

/// `cus_` and 16 lowercase alphanumerics. Customer ids appear in S3 keys and usage sort keys, so
/// they never contain `#` or `/`.
pub fn generate_customer_id() -> String {
    format!("cus_{}", random_string(LOWER_ALNUM, CUSTOMER_ID_LEN))
}

/// Whether `s` is shaped like a customer id (safe inside keys and prefixes).
pub fn is_customer_id(s: &str) -> bool {
    s.strip_prefix("cus_").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 64
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = ApiKey::generate();
        let exposed = key.expose();
        assert!(exposed.starts_with("rsz_"));
        assert_eq!(exposed.len(), 4 + 16 + 1 + 40);
        let parsed = ApiKey::parse(&exposed).unwrap();
        assert_eq!(parsed, key);
        let hash = key.secret_hash();
        assert_eq!(hash.len(), 64);
        assert!(parsed.verify(&hash));
        assert!(!ApiKey::generate().verify(&hash));
        assert!(!parsed.verify("not-hex"));
        assert!(!parsed.verify("abcd"));
    }

    #[test]
    fn hash_is_sha256_of_the_secret() {
        let key =
            ApiKey::parse("rsz_0123456789abcdef_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn").unwrap();
        assert_eq!(key.key_id(), "0123456789abcdef");
        assert_eq!(
            key.secret_hash(),
            hex::encode(Sha256::digest(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"))
        );
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = ApiKey::generate().expose();
        let cases = [
            String::new(),
            "rsz_".into(),
            "Bearer x".into(),
            good.replacen("rsz_", "rsk_", 1),
            good[..good.len() - 1].to_string(),
            format!("{good}x"),
            good.to_uppercase(),
            good.replace('_', "-"),
            format!("{good} "),
            "rsz_0123456789abcdef_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl+n".into(),
        ];
        for c in cases {
            assert!(ApiKey::parse(&c).is_none(), "{c}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::generate();
        let secret = key.expose().rsplit('_').next().unwrap().to_owned();
        assert!(!format!("{key:?}").contains(&secret));
    }

    #[test]
    fn customer_ids() {
        let id = generate_customer_id();
        assert!(is_customer_id(&id), "{id}");
        assert!(!is_customer_id("cus_"));
        assert!(!is_customer_id("cus_a#b"));
        assert!(!is_customer_id("cus_a/b"));
        assert!(!is_customer_id("abc"));
    }
}
