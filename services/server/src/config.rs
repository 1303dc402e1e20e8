//! Layered configuration: built-in defaults (the embedded development setup), then an optional
//! TOML file, then `DATABASE_URL`, then `HOMECARE_*` environment variables (`__` separates
//! nesting: `HOMECARE_AUTH__DEV_KEYS=false`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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
    /// The most database connections the pool opens.
    pub database_max_connections: u32,
    /// The municipality's time zone, in which days are counted.
    pub time_zone: String,
    /// After SIGTERM, how long calls in flight may take to finish before the server stops
    /// anyway.
    pub shutdown_grace_seconds: u64,
    /// Logging.
    pub log: LogConfig,
    /// Token issuers and keys.
    pub auth: AuthConfig,
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
    /// which `homecare dev-token` mints. Never enable outside development.
    pub dev_keys: bool,
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
            time_zone: "Europe/Oslo".into(),
            shutdown_grace_seconds: 30,
            log: LogConfig {
                format: LogFormat::Pretty,
                filter: "info".into(),
            },
            auth: AuthConfig {
                dev_keys: true,
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
        self.time_zone()?;
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "database_max_connections",
                reason: "must be at least 1".into(),
            });
        }
        if self.auth.citizen.issuer == self.auth.staff.issuer {
            return Err(ConfigError::Invalid {
                key: "auth.staff.issuer",
                reason: "must differ from auth.citizen.issuer, or a citizen could pass as staff"
                    .into(),
            });
        }
        Ok(())
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

    /// Where the development signing key is kept.
    pub fn dev_key_path(&self) -> PathBuf {
        self.data_dir.join("dev-signing-key.pem")
    }
}

#[cfg(test)]
mod tests {
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
    fn a_named_config_file_must_exist() {
        let error = Config::load(Some(Path::new("/nonexistent/homecare.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn same_issuer_for_citizens_and_staff_is_refused() {
        let mut config = Config::default();
        config.auth.staff.issuer = config.auth.citizen.issuer.clone();
        assert!(config.validate().is_err());
    }
}
