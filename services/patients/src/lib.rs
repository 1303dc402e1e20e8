//! Patients, who may act for them, the terms of use, and the access log.
//!
//! Every RPC that touches a patient's data resolves its [`Actor`] through [`Actors`], once:
//! who calls, for which patient, and by what right (the patient themself, a proxy with the
//! scope the call needs, staff of the patient's unit, a system). Reads and changes by anyone
//! but the patient themself are written to the [`access_log`].

pub mod access_log;
pub mod actor;
pub mod directory;
pub mod entity;
pub mod error;
pub mod kept_proxies;
pub mod proxy;
pub mod proxy_rules;
pub mod scope;
pub mod service;
pub mod store;
pub mod terms;

pub use actor::CareRelations;
pub use actor::{Actor, ActorKind, Actors, Need, Via};
pub use directory::PatientDirectory;
pub use error::AccessError;
pub use scope::Scope;
pub use service::PatientApi;
