//! Layered configuration: built-in defaults (the embedded development setup), then an optional
//! TOML file, then `DATABASE_URL`, then `HOMECARE_*` environment variables (`__` separates
//! nesting: `HOMECARE_AUTH__DEV_KEYS=false`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::capabilities::patients::TermsConfig;
pub use homecare_appointments::config::{CancellationConfig, EpjConfig};
pub use homecare_messaging::config::MessagingConfig;
pub use homecare_notifications::config::{
    EmailConfig, NotificationsConfig, Pacing, QuietHoursConfig, SmsConfig,
};

/// The whole configuration of the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Where the gRPC server listens.
    pub listen_addr: SocketAddr,
    /// Where local state lives: the SQLite file and the development signing key.
    pub data_dir: PathBuf,
    /// The database: `sqlite://path?mode=rwc` or `postgres://...`. Empty means the SQLite file
    /// `homecare.db` in `data_dir`.
    pub database_url: String,
    /// PostgreSQL only: the schema to use instead of `public` (tests use one per test).
    pub database_schema: Option<String>,
    /// The most database connections the pool for calls opens.
    pub database_max_connections: u32,
    /// The most database connections the pool for background work opens (outbox deliveries,
    /// notices made from the histories, followers of other processes' changes). A pool of its
    /// own, so that a burst of calls does not leave deliveries queueing behind it for a
    /// connection, nor the other way round.
    pub database_background_connections: u32,
    /// The municipality's time zone, in which days are counted.
    pub time_zone: String,
    /// After SIGTERM, how long calls in flight may take to finish before the server stops
    /// anyway.
    pub shutdown_grace_seconds: u64,
    /// Logging.
    pub log: LogConfig,
    /// Token issuers and keys.
    pub auth: AuthConfig,
    /// When patients may cancel visits.
    pub cancellation: CancellationConfig,
    /// The EPJ that cancellations are written to.
    pub epj: EpjConfig,
    /// The terms of use citizens accept.
    pub terms: TermsConfig,
    /// The operators' metrics endpoint.
    pub metrics: MetricsConfig,
    /// Which identity numbers are accepted.
    pub identity: IdentityConfig,
    /// Notices by SMS and e-mail.
    pub notifications: NotificationsConfig,
    /// Secure messaging.
    pub messaging: MessagingConfig,
    /// What is kept in memory of what changes (patients' upcoming visits, their proxies).
    pub read_cache: ReadCacheConfig,
}

/// The bounds of what is kept in memory. Kept visits and proxies are dropped on every
/// change (in this process at once, in another within the cross-process signal's delay), so
/// these bound memory, not staleness. With the defaults the server stays under 300 MB
/// however many citizens use it (measured with 100,000 patients of 20 visits, each read
/// once: see BENCHMARKS.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadCacheConfig {
    /// Patients' upcoming visits as citizens see them, in MiB as counted by the cache
    /// (about 6.5 KiB per patient with 20 visits, held encoded). 0 keeps none.
    pub visits_megabytes: u64,
    /// Patients' proxies, in MiB (well under 1 KiB per patient). 0 keeps none.
    pub proxies_megabytes: u64,
    /// Citizens whose patient id and passage of the terms gate are remembered (each saves
    /// an indexed query per call; some 1.5 KiB each).
    pub citizens: u64,
}

impl Default for ReadCacheConfig {
    fn default() -> Self {
        Self {
            visits_megabytes: 64,
            proxies_megabytes: 8,
            citizens: 20_000,
        }
    }
}

/// Which identity numbers are accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityConfig {
    /// Also the synthetic numbers of the national test registers (H-numbers, month + 40;
    /// Tenor, month + 80), for a municipality's test environment. Unset: on for the embedded
    /// SQLite default, off on PostgreSQL. Never in production.
    pub accept_synthetic: Option<bool>,
}

/// Where Prometheus scrapes `/metrics`, and how often table-backed figures are sampled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// The plain HTTP address of `/metrics`, e.g. `127.0.0.1:9464`; unset: not served.
    pub listen_addr: Option<SocketAddr>,
    /// Seconds between samples of outbox backlogs and the database pool.
    pub sample_seconds: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogConfig {
    /// `pretty` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `homecare=debug,info`; `RUST_LOG` overrides it.
    pub filter: String,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Who may call, by which tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthConfig {
    /// Accept tokens signed by the development key in `data_dir` (created on first start),
    /// which `homecare dev-token` mints. Unset: on for the embedded SQLite default, off on
    /// PostgreSQL (production), where only an explicit `true` turns it on. Never enable
    /// outside development.
    pub dev_keys: Option<bool>,
    /// The issuer of citizens' tokens (ID-porten or the health portal's).
    pub citizen: IssuerConfig,
    /// The issuer of staff and system tokens.
    pub staff: IssuerConfig,
    /// The `acr` values accepted for citizens: only the high assurance level.
    pub citizen_accepted_acr: Vec<String>,
    /// Seconds of clock difference tolerated for `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// How often keys published at a `jwks_url` are fetched again, so rotated keys are
    /// picked up.
    pub jwks_refresh_seconds: u64,
}

/// One token issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerConfig {
    /// The exact `iss` claim.
    pub issuer: String,
    /// The `aud` claim required, if any.
    pub audience: Option<String>,
    /// A JWKS file with the issuer's public keys.
    pub jwks_file: Option<PathBuf>,
    /// The URL where the issuer publishes its keys (its `jwks_uri`), fetched at start and
    /// every `auth.jwks_refresh_seconds`.
    pub jwks_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from(".homecare"),
            database_url: String::new(),
            database_schema: None,
            database_max_connections: 16,
            database_background_connections: 8,
            time_zone: "Europe/Oslo".into(),
            shutdown_grace_seconds: 30,
            log: LogConfig {
                format: LogFormat::Pretty,
                filter: "info".into(),
            },
            auth: AuthConfig {
                dev_keys: None,
                citizen: IssuerConfig {
                    issuer: "homecare-dev-citizen".into(),
                    audience: Some("homecare".into()),
                    jwks_file: None,
                    jwks_url: None,
                },
                staff: IssuerConfig {
                    issuer: "homecare-dev-staff".into(),
                    audience: Some("homecare".into()),
                    jwks_file: None,
                    jwks_url: None,
                },
                citizen_accepted_acr: vec!["idporten-loa-high".into()],
                leeway_seconds: 30,
                jwks_refresh_seconds: 900,
            },
            cancellation: CancellationConfig::default(),
            epj: EpjConfig::default(),
            terms: TermsConfig::default(),
            metrics: MetricsConfig {
                listen_addr: None,
                sample_seconds: 10,
            },
            identity: IdentityConfig {
                accept_synthetic: None,
            },
            notifications: NotificationsConfig::default(),
            messaging: MessagingConfig::default(),
            read_cache: ReadCacheConfig::default(),
        }
    }
}

/// A configuration that cannot be used, naming the key that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layers could not be read or merged.
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of its domain.
    #[error("configuration key {key}: {reason}")]
    Invalid {
        /// The key, e.g. `time_zone`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl From<homecare_runtime::InvalidConfig> for ConfigError {
    fn from(invalid: homecare_runtime::InvalidConfig) -> Self {
        ConfigError::Invalid {
            key: invalid.key,
            reason: invalid.reason,
        }
    }
}

impl Config {
    /// Loads the layers, with `file` as the TOML layer (skipped when it does not exist).
    ///
    /// A file named explicitly must exist: a mistyped path must not start the service on
    /// the development defaults.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        if let Some(named) = file
            && !named.exists()
        {
            return Err(ConfigError::Invalid {
                key: "config",
                reason: format!("file {} does not exist", named.display()),
            });
        }
        let file = file.map_or_else(|| PathBuf::from("homecare.toml"), Path::to_path_buf);
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("HOMECARE_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.notifications.validate(self.time_zone()?)?;
        self.messaging.validate()?;
        for (key, connections) in [
            ("database_max_connections", self.database_max_connections),
            (
                "database_background_connections",
                self.database_background_connections,
            ),
        ] {
            if connections == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if self.auth.citizen.issuer == self.auth.staff.issuer {
            return Err(ConfigError::Invalid {
                key: "auth.staff.issuer",
                reason: "must differ from auth.citizen.issuer, or a citizen could pass as staff"
                    .into(),
            });
        }
        self.cancellation.policy(self.time_zone()?)?;
        self.terms.policy()?;
        Ok(self.epj.validate()?)
    }

    /// The municipality's time zone.
    pub fn time_zone(&self) -> Result<Tz, ConfigError> {
        self.time_zone.parse().map_err(|_| ConfigError::Invalid {
            key: "time_zone",
            reason: "is not an IANA time zone name such as Europe/Oslo".into(),
        })
    }

    /// The database URL, defaulting to the SQLite file in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("homecare.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }

    /// Whether tokens of the development key are accepted: as `auth.dev_keys` says, and when
    /// it is unset only on the embedded SQLite database. A production server on PostgreSQL
    /// never trusts a key lying in its data directory unless told to.
    pub fn dev_keys_enabled(&self) -> bool {
        self.auth
            .dev_keys
            .unwrap_or_else(|| self.effective_database_url().starts_with("sqlite:"))
    }

    /// Which identity numbers are accepted: the test registers' synthetic ones as
    /// `identity.accept_synthetic` says, and when it is unset only on the embedded SQLite
    /// database.
    pub fn identity_rules(&self) -> homecare_core::IdentityRules {
        homecare_core::IdentityRules {
            accept_synthetic: self
                .identity
                .accept_synthetic
                .unwrap_or_else(|| self.effective_database_url().starts_with("sqlite:")),
        }
    }

    /// Where the development signing key is kept.
    pub fn dev_key_path(&self) -> PathBuf {
        self.data_dir.join("dev-signing-key.pem")
    }
}

#[cfg(test)]
mod tests {
    use homecare_appointments::cancellation::CutOff;
    use homecare_appointments::domain::ServiceType;

    use super::*;

    #[test]
    fn defaults_are_the_embedded_development_setup() {
        let config = Config::default();
        config.validate().unwrap();
        assert!(config.effective_database_url().starts_with("sqlite://"));
        assert_eq!(config.time_zone().unwrap(), chrono_tz::Europe::Oslo);
    }

    #[test]
    fn unknown_time_zone_names_the_key() {
        let config = Config {
            time_zone: "Europe/Atlantis".into(),
            ..Config::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("time_zone"), "{error}");
    }

    #[test]
    fn an_empty_pool_names_its_key() {
        for (key, config) in [
            (
                "database_max_connections",
                Config {
                    database_max_connections: 0,
                    ..Config::default()
                },
            ),
            (
                "database_background_connections",
                Config {
                    database_background_connections: 0,
                    ..Config::default()
                },
            ),
        ] {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let error = Config::load(Some(Path::new("/nonexistent/homecare.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn cut_offs_are_read_from_toml_most_specific_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("homecare.toml");
        std::fs::write(
            &file,
            "[cancellation]\ndefault = { hours = 12 }\n\
             [cancellation.service_types]\npractical_help = { working_days = 2 }\n\
             [cancellation.care_units]\nnord = { hours = 3 }\n",
        )
        .unwrap();
        let config = Config::load(Some(&file)).unwrap();
        let policy = config
            .cancellation
            .policy(config.time_zone().unwrap())
            .unwrap();
        assert_eq!(
            policy.cut_off("sor", ServiceType::HomeNursing),
            CutOff::Hours(12)
        );
        assert_eq!(
            policy.cut_off("sor", ServiceType::PracticalHelp),
            CutOff::WorkingDays(2)
        );
        assert_eq!(
            policy.cut_off("nord", ServiceType::PracticalHelp),
            CutOff::Hours(3)
        );
    }

    #[test]
    fn unknown_service_types_and_zero_working_days_are_refused() {
        let mut config = Config::default();
        config
            .cancellation
            .service_types
            .insert("massage".into(), CutOff::Hours(1));
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("cancellation.service_types"), "{error}");

        let mut config = Config::default();
        config.cancellation.default = CutOff::WorkingDays(0);
        assert!(config.validate().is_err());
    }

    #[test]
    fn the_epj_token_is_not_in_debug_output() {
        let mut config = Config::default();
        config.epj.bearer_token = Some("very-secret".into());
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn the_epj_token_is_read_from_the_file() {
        use secrecy::ExposeSecret as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("homecare.toml");
        std::fs::write(&file, "[epj]\nbearer_token = \"s3cret\"\n").unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(
            config
                .epj
                .bearer_token
                .as_ref()
                .map(|token| token.expose_secret()),
            Some("s3cret")
        );
    }

    #[test]
    fn dev_keys_are_on_by_default_only_for_the_embedded_database() {
        let embedded = Config::default();
        assert!(embedded.dev_keys_enabled());

        let mut production = Config {
            database_url: "postgres://db.example/homecare".into(),
            ..Config::default()
        };
        assert!(!production.dev_keys_enabled());
        production.auth.dev_keys = Some(true);
        assert!(production.dev_keys_enabled(), "an explicit true is obeyed");

        let mut embedded_off = Config::default();
        embedded_off.auth.dev_keys = Some(false);
        assert!(!embedded_off.dev_keys_enabled());
    }

    #[test]
    fn same_issuer_for_citizens_and_staff_is_refused() {
        let mut config = Config::default();
        config.auth.staff.issuer = config.auth.citizen.issuer.clone();
        assert!(config.validate().is_err());
    }
}
