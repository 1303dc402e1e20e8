//! Authentication of every RPC: a bearer JWT from one of two issuers, verified once, turned
//! into a [`Caller`] that services read from the request's extensions.
//!
//! Citizens' tokens (ID-porten or the health portal) carry the identity number in `pid` and
//! must be at the high assurance level (`acr`). Staff tokens carry `sub`, `roles` and
//! `care_units`. Any token that is missing, expired, not yet valid, badly signed, for another
//! audience or from an unknown issuer is UNAUTHENTICATED with a stable reason.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use homecare_core::identifier::CareUnitId;
use homecare_core::status::unauthenticated;
use homecare_core::text::parse_display_name;
use homecare_core::{Caller, StaffCaller};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::config::{AuthConfig, IssuerConfig};
use crate::dev_keys::DevKey;

/// The claims of a citizen's token, as development tokens are minted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CitizenClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Subject (the issuer's pseudonym for the person).
    pub sub: String,
    /// The person's national identity number.
    pub pid: String,
    /// Authentication context: the assurance level.
    pub acr: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// The claims of a staff or system token, as development tokens are minted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The staff member's or system account's stable id.
    pub sub: String,
    /// The staff member's name, shown to patients in their access log; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Granted roles, e.g. `nurse` or `epj-integration`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The care units the staff member works in.
    #[serde(default)]
    pub care_units: Vec<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// What this service reads from a verified citizen token. Every claim it relies on is
/// optional here, so that a missing one is named in the refusal instead of failing the
/// decoding as a whole. `aud`, `iss` and `nbf` are checked by the JWT library.
#[derive(Deserialize)]
struct VerifiedCitizen {
    exp: Option<i64>,
    iat: Option<i64>,
    pid: Option<String>,
    acr: Option<String>,
}

/// What this service reads from a verified staff or system token.
#[derive(Deserialize)]
struct VerifiedStaff {
    exp: Option<i64>,
    iat: Option<i64>,
    sub: Option<String>,
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    care_units: Vec<String>,
}

/// UNAUTHENTICATED for a token without `claim`, or with it empty. The reason names the
/// claim (`MISSING_CLAIM_AUD`), and so does the ErrorInfo metadata (`claim`).
fn missing_claim(claim: &str) -> Status {
    homecare_core::status::unauthenticated_with(
        &format!("MISSING_CLAIM_{}", claim.to_ascii_uppercase()),
        &format!("the token has no {claim} claim"),
        &[("claim", claim.to_owned())],
    )
}

/// A claim the identity provider must have filled: present and not blank.
fn required_claim(value: Option<String>, claim: &str) -> Result<String, Status> {
    value
        .filter(|value| !value.trim().is_empty())
        .ok_or_else(|| missing_claim(claim))
}

/// Why the authentication setup is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A JWKS file could not be read or parsed.
    #[error("jwks file {path}: {reason}")]
    Jwks {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// An issuer's published keys could not be fetched.
    #[error("jwks url {url}: {reason}")]
    JwksUrl {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An issuer has no key to verify with.
    #[error("issuer {0} has no keys: set its jwks_file or jwks_url, or enable auth.dev_keys")]
    NoKeys(String),
}

struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

struct Issuer {
    name: String,
    audience: Option<String>,
    /// Keys from the JWKS file and the development key.
    fixed_keys: Vec<VerificationKey>,
    /// Where the issuer publishes its keys, if anywhere.
    jwks_url: Option<String>,
    /// The keys last fetched from `jwks_url`, replaced whole when a refresh finds them changed.
    published_keys: std::sync::RwLock<Arc<PublishedKeys>>,
}

/// An issuer's published keys, and what tells one fetch's keys from another's.
#[derive(Default)]
struct PublishedKeys {
    /// The key set as JSON, re-serialised so that formatting alone is no change.
    fingerprint: String,
    keys: Vec<VerificationKey>,
}

/// Verifies tokens against the configured issuers.
pub struct Verifier {
    citizen: Issuer,
    staff: Issuer,
    citizen_accepted_acr: Vec<String>,
    leeway_seconds: u64,
    identity_rules: homecare_core::IdentityRules,
    verified: VerifiedTokens,
    /// Counts changes of the published keys. A remembered verdict holds only for the key
    /// set it was reached with: once a refresh retires a key, its tokens are checked again.
    key_generation: AtomicU64,
}

/// The most verified tokens remembered; a portal backend sends one token for many calls.
const VERIFIED_TOKENS_CAPACITY: u64 = 10_000;

/// The longest a verdict is kept, whatever the token's own `exp` (which is checked on every
/// use).
const VERIFIED_TOKENS_TIME_TO_LIVE: std::time::Duration = std::time::Duration::from_secs(3600);

/// A verdict remembered: the caller a token proves, until when, under which key set.
#[derive(Clone)]
struct Verdict {
    caller: Caller,
    expires_at: i64,
    key_generation: u64,
}

/// Tokens that passed verification, with the caller they prove, until they expire or the
/// keys change.
///
/// Signature checks dominate the cost of a cheap call; a token is immutable, so verifying the
/// same string again with the same keys until its `exp` gives the same answer. Only successes
/// are remembered.
struct VerifiedTokens(homecare_core::cache::Cache<String, Verdict>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self(homecare_core::cache::Cache::new(
            "verified_tokens",
            VERIFIED_TOKENS_CAPACITY,
            VERIFIED_TOKENS_TIME_TO_LIVE,
        ))
    }
}

impl VerifiedTokens {
    fn get(&self, token: &str, now: i64, key_generation: u64) -> Option<Caller> {
        self.0
            .get(token)
            .filter(|verdict| now < verdict.expires_at && verdict.key_generation == key_generation)
            .map(|verdict| verdict.caller)
    }

    fn insert(&self, token: &str, verdict: Verdict) {
        self.0.insert(token.to_owned(), verdict);
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("citizen_issuer", &self.citizen.name)
            .field("staff_issuer", &self.staff.name)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

impl Verifier {
    /// A verifier for the issuers in `config`, also trusting `dev_key` when given.
    pub fn new(config: &AuthConfig, dev_key: Option<&DevKey>) -> Result<Self, AuthSetupError> {
        let dev_jwks = dev_key.map(DevKey::jwks);
        Ok(Self {
            citizen: Issuer::new(&config.citizen, dev_jwks.as_ref())?,
            staff: Issuer::new(&config.staff, dev_jwks.as_ref())?,
            citizen_accepted_acr: config.citizen_accepted_acr.clone(),
            leeway_seconds: config.leeway_seconds,
            identity_rules: homecare_core::IdentityRules::PRODUCTION,
            verified: VerifiedTokens::default(),
            key_generation: AtomicU64::new(0),
        })
    }

    /// The same verifier, accepting citizens' identity numbers under `rules`.
    pub fn with_identity_rules(mut self, rules: homecare_core::IdentityRules) -> Self {
        self.identity_rules = rules;
        self
    }

    /// A verifier whose issuers' published keys (`jwks_url`) have been fetched once.
    pub async fn load(
        config: &AuthConfig,
        dev_key: Option<&DevKey>,
        http: &reqwest::Client,
    ) -> Result<Self, AuthSetupError> {
        let verifier = Self::new(config, dev_key)?;
        // Fails when a URL gives no usable key, so no issuer is left without keys.
        verifier.refresh_published_keys(http).await?;
        Ok(verifier)
    }

    /// Whether any issuer publishes its keys at a URL, so they need refreshing.
    pub fn has_published_keys(&self) -> bool {
        self.citizen.jwks_url.is_some() || self.staff.jwks_url.is_some()
    }

    /// Fetches every issuer's published keys again and replaces the old ones. On an error the
    /// old keys stay in use. When a key set changed, verdicts remembered under the old one no
    /// longer count.
    pub async fn refresh_published_keys(
        &self,
        http: &reqwest::Client,
    ) -> Result<(), AuthSetupError> {
        for issuer in [&self.citizen, &self.staff] {
            let Some(url) = &issuer.jwks_url else {
                continue;
            };
            let keys = fetch_jwks(http, url).await?;
            let mut published = issuer
                .published_keys
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if published.fingerprint != keys.fingerprint {
                *published = Arc::new(keys);
                self.key_generation.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// The caller an `authorization` header value proves, or UNAUTHENTICATED.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Caller, Status> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| unauthenticated("MISSING_CREDENTIALS", "a bearer token is required"))?;
        let now = chrono::Utc::now().timestamp();
        // Read before verifying: a refresh during the check leaves the verdict under the old
        // generation, where it is never found again.
        let key_generation = self.key_generation.load(Ordering::SeqCst);
        if let Some(caller) = self.verified.get(token, now, key_generation) {
            return Ok(caller);
        }
        let (caller, expires_at) = self.verify_signed(token, now)?;
        let verdict = Verdict {
            caller: caller.clone(),
            expires_at,
            key_generation,
        };
        self.verified.insert(token, verdict);
        Ok(caller)
    }

    /// Verifies `token` fully: signature, issuer, audience, times and every claim this
    /// service relies on. Returns the caller and the instant (seconds since the epoch) the
    /// token expires.
    fn verify_signed(&self, token: &str, now: i64) -> Result<(Caller, i64), Status> {
        // The issuer is read unverified only to choose which keys to verify with; the
        // verification below checks it again.
        let claimed_issuer = jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .map_err(|_| unauthenticated("MALFORMED_TOKEN", "the token is not a valid JWT"))?
            .iss;
        match claimed_issuer.as_deref() {
            None | Some("") => Err(missing_claim("iss")),
            Some(iss) if iss == self.citizen.name => {
                let claims: VerifiedCitizen =
                    self.citizen.decode(token, self.leeway_seconds, &[])?;
                self.check_issued_at(claims.iat, now)?;
                let pid = required_claim(claims.pid, "pid")?;
                let acr = required_claim(claims.acr, "acr")?;
                if !self.citizen_accepted_acr.contains(&acr) {
                    return Err(unauthenticated(
                        "INSUFFICIENT_ASSURANCE_LEVEL",
                        "log in at the high assurance level",
                    ));
                }
                let pid = self.identity_rules.parse(&pid).map_err(|_| {
                    unauthenticated("INVALID_PID", "the token's pid is not an identity number")
                })?;
                let expires_at = claims.exp.ok_or_else(|| missing_claim("exp"))?;
                Ok((Caller::Citizen { pid }, expires_at))
            }
            Some(iss) if iss == self.staff.name => {
                let claims: VerifiedStaff =
                    self.staff.decode(token, self.leeway_seconds, &["sub"])?;
                self.check_issued_at(claims.iat, now)?;
                let subject = required_claim(claims.sub, "sub")?;
                let expires_at = claims.exp.ok_or_else(|| missing_claim("exp"))?;
                let name = match claims.name.filter(|name| !name.trim().is_empty()) {
                    // Shown to patients in their access log, so held to the rules of any
                    // name a person reads.
                    Some(name) => Some(parse_display_name(&name).map_err(|_| {
                        unauthenticated(
                            "INVALID_NAME_CLAIM",
                            "the token's name claim is not a name that can be shown",
                        )
                    })?),
                    None => None,
                };
                // Units are matched against the visits' and threads' units, which are
                // checked identifiers: a claim that is not one is refused, not ignored.
                let care_units = claims
                    .care_units
                    .iter()
                    .map(|unit| CareUnitId::parse(unit))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        unauthenticated(
                            "INVALID_CARE_UNIT_CLAIM",
                            "the token's care_units claim holds something that is not a care \
                             unit id",
                        )
                    })?;
                Ok((
                    Caller::Staff(StaffCaller {
                        subject,
                        name,
                        roles: claims.roles,
                        care_units,
                    }),
                    expires_at,
                ))
            }
            _ => Err(unauthenticated(
                "UNKNOWN_ISSUER",
                "the token is not from a trusted issuer",
            )),
        }
    }

    /// Refuses a token issued in the future (beyond the leeway): a clock that far off, or a
    /// token made to outlive its issuer's rotation.
    fn check_issued_at(&self, iat: Option<i64>, now: i64) -> Result<(), Status> {
        let leeway = i64::try_from(self.leeway_seconds).unwrap_or(i64::MAX);
        match iat {
            Some(iat) if iat > now.saturating_add(leeway) => Err(unauthenticated(
                "TOKEN_ISSUED_IN_FUTURE",
                "the token's iat is in the future",
            )),
            _ => Ok(()),
        }
    }
}

impl Issuer {
    fn new(config: &IssuerConfig, dev_jwks: Option<&JwkSet>) -> Result<Self, AuthSetupError> {
        let mut keys = Vec::new();
        if let Some(path) = &config.jwks_file {
            let jwks_error = |reason: String| AuthSetupError::Jwks {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| jwks_error(e.to_string()))?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| jwks_error(e.to_string()))?;
            keys.extend(verification_keys(&set).map_err(jwks_error)?);
        }
        if let Some(set) = dev_jwks {
            keys.extend(
                verification_keys(set).map_err(|reason| AuthSetupError::Jwks {
                    path: "<dev key>".into(),
                    reason,
                })?,
            );
        }
        if keys.is_empty() && config.jwks_url.is_none() {
            return Err(AuthSetupError::NoKeys(config.issuer.clone()));
        }
        Ok(Self {
            name: config.issuer.clone(),
            audience: config.audience.clone(),
            fixed_keys: keys,
            jwks_url: config.jwks_url.clone(),
            published_keys: std::sync::RwLock::new(Arc::new(PublishedKeys::default())),
        })
    }

    fn published(&self) -> Arc<PublishedKeys> {
        self.published_keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The claims of `token` once its signature, issuer, audience (when one is configured)
    /// and times check out, and `exp`, `iss`, `aud` and `extra_required` are present.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        leeway_seconds: u64,
        extra_required: &[&str],
    ) -> Result<T, Status> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthenticated("MALFORMED_TOKEN", "the token is not a valid JWT"))?;
        let published = self.published();
        let candidates = self
            .fixed_keys
            .iter()
            .chain(published.keys.iter())
            .filter(|key| {
                key.algorithm == header.alg
                    && match (&header.kid, &key.kid) {
                        (Some(wanted), Some(kid)) => wanted == kid,
                        _ => true,
                    }
            });

        let mut last_error = unauthenticated("BAD_SIGNATURE", "the token's signature is not valid");
        for candidate in candidates {
            let mut validation = Validation::new(candidate.algorithm);
            validation.set_issuer(&[&self.name]);
            // jsonwebtoken checks `aud` only when the token has one: it must be required too,
            // or a token minted for another service by the same provider would pass.
            let mut required = vec!["exp", "iss"];
            match &self.audience {
                Some(audience) => {
                    validation.set_audience(&[audience]);
                    required.push("aud");
                }
                None => validation.validate_aud = false,
            }
            required.extend_from_slice(extra_required);
            validation.set_required_spec_claims(&required);
            validation.leeway = leeway_seconds;
            validation.validate_nbf = true;
            match jsonwebtoken::decode::<T>(token, &candidate.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(error) => {
                    last_error = match error.kind() {
                        ErrorKind::ExpiredSignature => {
                            unauthenticated("TOKEN_EXPIRED", "the token has expired")
                        }
                        ErrorKind::ImmatureSignature => {
                            unauthenticated("TOKEN_NOT_YET_VALID", "the token is not yet valid")
                        }
                        ErrorKind::InvalidAudience => {
                            unauthenticated("WRONG_AUDIENCE", "the token is for another audience")
                        }
                        ErrorKind::InvalidSignature => last_error,
                        ErrorKind::MissingRequiredClaim(claim) => missing_claim(claim),
                        _ => unauthenticated(
                            "MALFORMED_TOKEN",
                            "the token lacks required claims or is malformed",
                        ),
                    };
                    // Only a bad signature is worth trying the issuer's next key for.
                    if !matches!(error.kind(), ErrorKind::InvalidSignature) {
                        return Err(last_error);
                    }
                }
            }
        }
        Err(last_error)
    }
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<PublishedKeys, AuthSetupError> {
    let failed = |reason: String| AuthSetupError::JwksUrl {
        url: url.to_owned(),
        reason,
    };
    let response = http
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| failed(e.to_string()))?;
    let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    let set: JwkSet = serde_json::from_slice(&body).map_err(|e| failed(e.to_string()))?;
    let keys = verification_keys(&set).map_err(failed)?;
    if keys.is_empty() {
        return Err(failed("no usable keys".into()));
    }
    let fingerprint = serde_json::to_string(&set).map_err(|e| failed(e.to_string()))?;
    Ok(PublishedKeys { fingerprint, keys })
}

fn verification_keys(set: &JwkSet) -> Result<Vec<VerificationKey>, String> {
    set.keys
        .iter()
        .filter(|jwk| jwk.is_supported())
        .map(|jwk| {
            let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(declared), _) => Algorithm::from_str(&declared.to_string())
                    .map_err(|_| format!("unsupported alg {declared}"))?,
                (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(params))
                    if params.curve == EllipticCurve::P384 =>
                {
                    Algorithm::ES384
                }
                (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                (None, _) => {
                    return Err("keys without alg must be RSA, EC or OKP".into());
                }
            };
            Ok(VerificationKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key: DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// Authenticates each call of the capabilities' services (as their [`homecare_runtime::Gate`]).
#[derive(Debug, Clone)]
pub struct Authenticate(pub Arc<Verifier>);

impl Authenticate {
    /// Lets `request` through with its verified caller, or refuses it.
    pub fn check(&self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok());
        let caller = self.0.verify(authorization)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }

    /// The gate before every capability's gRPC services.
    pub fn into_gate(self) -> homecare_runtime::Gate {
        homecare_runtime::Gate::new(move |request| self.check(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn citizen() -> Caller {
        Caller::Citizen {
            pid: homecare_core::NationalIdentityNumber::parse("15034012366").unwrap(),
        }
    }

    #[test]
    fn issuer_keys_from_a_jwks_file_verify_tokens_without_dev_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = DevKey::generate().unwrap();
        let jwks_path = dir.path().join("jwks.json");
        std::fs::write(&jwks_path, serde_json::to_string(&key.jwks()).unwrap()).unwrap();

        let mut config = crate::config::Config::default().auth;
        config.dev_keys = Some(false);
        config.citizen.jwks_file = Some(jwks_path.clone());
        config.staff.jwks_file = Some(jwks_path);
        let verifier = Verifier::new(&config, None).unwrap();

        let token = crate::dev_keys::TokenMinter::new(key, &config)
            .citizen("15034012366", chrono::Duration::minutes(5))
            .unwrap();
        let caller = verifier.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert!(matches!(caller, Caller::Citizen { .. }));
    }

    /// An identity provider on loopback publishing `key` at `/jwks`.
    async fn publish(server: &wiremock::MockServer, key: &DevKey) {
        use wiremock::matchers::{method, path};
        server.reset().await;
        wiremock::Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(key.jwks()))
            .mount(server)
            .await;
    }

    /// Auth settings that trust only the keys `idp` publishes.
    fn published_keys_only(idp: &wiremock::MockServer) -> AuthConfig {
        let mut config = crate::config::Config::default().auth;
        config.dev_keys = Some(false);
        config.citizen.jwks_url = Some(format!("{}/jwks", idp.uri()));
        config.staff.jwks_url = Some(format!("{}/jwks", idp.uri()));
        config
    }

    fn bearer(key: &DevKey, config: &AuthConfig) -> String {
        let token = crate::dev_keys::TokenMinter::new(key.clone(), config)
            .citizen("15034012366", chrono::Duration::minutes(5))
            .unwrap();
        format!("Bearer {token}")
    }

    #[tokio::test]
    async fn keys_published_at_a_url_are_fetched_and_rotated_keys_picked_up_on_refresh() {
        let idp = wiremock::MockServer::start().await;
        let old_key = DevKey::generate().unwrap();
        publish(&idp, &old_key).await;
        let config = published_keys_only(&idp);
        let http = reqwest::Client::new();
        let verifier = Verifier::load(&config, None, &http).await.unwrap();
        assert!(verifier.verify(Some(&bearer(&old_key, &config))).is_ok());

        let new_key = DevKey::generate().unwrap();
        let signed_by_new = bearer(&new_key, &config);
        let before = verifier.verify(Some(&signed_by_new)).unwrap_err();
        assert_eq!(before.code(), tonic::Code::Unauthenticated);

        publish(&idp, &new_key).await;
        verifier.refresh_published_keys(&http).await.unwrap();
        assert!(verifier.verify(Some(&signed_by_new)).is_ok());
        let retired = verifier
            .verify(Some(&bearer(&old_key, &config)))
            .unwrap_err();
        assert_eq!(retired.code(), tonic::Code::Unauthenticated);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_old_keys() {
        let idp = wiremock::MockServer::start().await;
        let key = DevKey::generate().unwrap();
        publish(&idp, &key).await;
        let config = published_keys_only(&idp);
        let http = reqwest::Client::new();
        let verifier = Verifier::load(&config, None, &http).await.unwrap();

        idp.reset().await; // the provider now answers 404
        assert!(matches!(
            verifier.refresh_published_keys(&http).await,
            Err(AuthSetupError::JwksUrl { .. })
        ));
        assert!(verifier.verify(Some(&bearer(&key, &config))).is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_key_url_stops_the_start() {
        let idp = wiremock::MockServer::start().await; // publishes nothing: 404
        let config = published_keys_only(&idp);
        let result = Verifier::load(&config, None, &reqwest::Client::new()).await;
        assert!(matches!(result, Err(AuthSetupError::JwksUrl { .. })));
    }

    #[test]
    fn an_issuer_without_keys_is_a_setup_error() {
        let mut config = crate::config::Config::default().auth;
        config.dev_keys = Some(false);
        assert!(matches!(
            Verifier::new(&config, None),
            Err(AuthSetupError::NoKeys(_))
        ));
    }

    fn verdict(expires_at: i64, key_generation: u64) -> Verdict {
        Verdict {
            caller: citizen(),
            expires_at,
            key_generation,
        }
    }

    #[test]
    fn a_remembered_token_is_forgotten_when_it_expires() {
        let tokens = VerifiedTokens::default();
        tokens.insert("token", verdict(1_000, 0));
        assert!(tokens.get("token", 999, 0).is_some());
        assert!(tokens.get("token", 1_000, 0).is_none(), "expired at exp");
        assert!(tokens.get("other", 999, 0).is_none());
    }

    #[test]
    fn a_remembered_token_counts_only_under_the_keys_it_was_verified_with() {
        let tokens = VerifiedTokens::default();
        tokens.insert("token", verdict(1_000, 3));
        assert!(tokens.get("token", 950, 3).is_some());
        assert!(tokens.get("token", 950, 4).is_none());
    }

    #[tokio::test]
    async fn a_token_verified_before_its_key_was_retired_is_refused_after_the_refresh() {
        let idp = wiremock::MockServer::start().await;
        let old_key = DevKey::generate().unwrap();
        publish(&idp, &old_key).await;
        let config = published_keys_only(&idp);
        let http = reqwest::Client::new();
        let verifier = Verifier::load(&config, None, &http).await.unwrap();
        let token = bearer(&old_key, &config);
        assert!(
            verifier.verify(Some(&token)).is_ok(),
            "verified and remembered"
        );

        // A refresh that finds the same keys keeps what was verified.
        verifier.refresh_published_keys(&http).await.unwrap();
        assert!(verifier.verify(Some(&token)).is_ok());

        publish(&idp, &DevKey::generate().unwrap()).await;
        verifier.refresh_published_keys(&http).await.unwrap();
        let refused = verifier.verify(Some(&token)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
}
