//! The development signing key, and tokens signed with it.
//!
//! The embedded default needs no identity provider: on first start the server creates an
//! Ed25519 key in its data directory, accepts tokens signed with it for both issuers, and
//! `homecare dev-token` mints them. Tests and the load tool use the same minting.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// The `kid` of the development key.
pub const DEV_KEY_ID: &str = "homecare-dev";

/// The fixed DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 signing key for development tokens.
#[derive(Clone)]
pub struct DevKey {
    seed: [u8; 32],
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKey(<secret>)")
    }
}

/// Why the development key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    /// Reading or writing the key file failed.
    #[error("dev key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a PKCS#8 Ed25519 key.
    #[error("dev key file {0} is not a PKCS#8 Ed25519 private key in PEM")]
    Format(String),
    /// The system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl DevKey {
    /// A new random key.
    pub fn generate() -> Result<Self, DevKeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| DevKeyError::Random(error.to_string()))?;
        Ok(Self { seed })
    }

    /// The key in `path`, created there (readable by the owner only) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, DevKeyError> {
        let io = |source| DevKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                Self::from_pem(&pem).ok_or_else(|| DevKeyError::Format(path.display().to_string()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                write_private(path, key.to_pem().as_bytes()).map_err(io)?;
                tracing::warn!(path = %path.display(), "created a development signing key");
                Ok(key)
            }
            Err(error) => Err(io(error)),
        }
    }

    /// The key in `path`, which must exist.
    pub fn load(path: &Path) -> Result<Self, DevKeyError> {
        let pem = std::fs::read_to_string(path).map_err(|source| DevKeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem).ok_or_else(|| DevKeyError::Format(path.display().to_string()))
    }

    fn pkcs8_der(&self) -> Vec<u8> {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.seed);
        der
    }

    fn to_pem(&self) -> String {
        let body = STANDARD.encode(self.pkcs8_der());
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
    }

    fn from_pem(pem: &str) -> Option<Self> {
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(body.trim()).ok()?;
        let seed = der.strip_prefix(&PKCS8_ED25519_PREFIX[..])?;
        Some(Self {
            seed: seed.try_into().ok()?,
        })
    }

    /// The public half, as a JWK set an issuer would publish.
    pub fn jwks(&self) -> JwkSet {
        let public = ed25519_dalek::SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes();
        JwkSet {
            keys: vec![Jwk {
                common: CommonParameters {
                    public_key_use: Some(PublicKeyUse::Signature),
                    key_algorithm: Some(KeyAlgorithm::EdDSA),
                    key_id: Some(DEV_KEY_ID.into()),
                    ..CommonParameters::default()
                },
                algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: URL_SAFE_NO_PAD.encode(public),
                }),
            }],
        }
    }

    /// Signs `claims` as a JWT.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, DevKeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(DEV_KEY_ID.into());
        let key = EncodingKey::from_ed_der(&self.pkcs8_der());
        Ok(jsonwebtoken::encode(&header, claims, &key)?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_survives_a_round_trip_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/key.pem");
        let created = DevKey::load_or_create(&path).unwrap();
        let loaded = DevKey::load(&path).unwrap();
        assert_eq!(created.seed, loaded.seed);
    }

    #[test]
    fn garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(DevKey::load(&path), Err(DevKeyError::Format(_))));
    }
}

/// Mints development tokens for the issuers of a configuration.
#[derive(Debug, Clone)]
pub struct TokenMinter {
    key: DevKey,
    citizen_issuer: String,
    staff_issuer: String,
    audience: Option<String>,
    staff_audience: Option<String>,
}

impl TokenMinter {
    /// A minter signing with `key` for the issuers in `auth`.
    pub fn new(key: DevKey, auth: &crate::config::AuthConfig) -> Self {
        Self {
            key,
            citizen_issuer: auth.citizen.issuer.clone(),
            staff_issuer: auth.staff.issuer.clone(),
            audience: auth.citizen.audience.clone(),
            staff_audience: auth.staff.audience.clone(),
        }
    }

    /// A citizen token at the high assurance level for the person with identity number
    /// `pid`, valid for `ttl`.
    pub fn citizen(&self, pid: &str, ttl: chrono::Duration) -> Result<String, DevKeyError> {
        self.citizen_with_acr(pid, "idporten-loa-high", ttl)
    }

    /// A citizen token at assurance level `acr`.
    pub fn citizen_with_acr(
        &self,
        pid: &str,
        acr: &str,
        ttl: chrono::Duration,
    ) -> Result<String, DevKeyError> {
        let now = chrono::Utc::now().timestamp();
        self.key.sign(&crate::auth::CitizenClaims {
            iss: self.citizen_issuer.clone(),
            aud: self.audience.clone(),
            sub: uuid::Uuid::new_v4().to_string(),
            pid: pid.to_owned(),
            acr: acr.to_owned(),
            iat: now,
            exp: now + ttl.num_seconds(),
        })
    }

    /// A staff token for `subject` with `roles` in `care_units`, valid for `ttl`.
    pub fn staff(
        &self,
        subject: &str,
        roles: &[&str],
        care_units: &[&str],
        ttl: chrono::Duration,
    ) -> Result<String, DevKeyError> {
        self.named_staff(subject, None, roles, care_units, ttl)
    }

    /// Like [`TokenMinter::staff`], with the staff member's `name` in the token.
    pub fn named_staff(
        &self,
        subject: &str,
        name: Option<&str>,
        roles: &[&str],
        care_units: &[&str],
        ttl: chrono::Duration,
    ) -> Result<String, DevKeyError> {
        let now = chrono::Utc::now().timestamp();
        self.key.sign(&crate::auth::StaffClaims {
            iss: self.staff_issuer.clone(),
            aud: self.staff_audience.clone(),
            sub: subject.to_owned(),
            name: name.map(str::to_owned),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            care_units: care_units.iter().map(|unit| (*unit).to_owned()).collect(),
            iat: now,
            exp: now + ttl.num_seconds(),
        })
    }
}
