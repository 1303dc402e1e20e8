//! Patients, who may act for them, and the access log.
//!
//! Every RPC that touches a patient's data resolves its [`Actor`] here, once: who calls, for
//! which patient, and by what right. Reads and changes by anyone but the patient themself are
//! written to the [`access_log`].

pub mod access_log;
pub mod actor;
pub mod directory;
pub mod entity;
pub mod service;
pub mod store;

pub use actor::{Actor, Via};
pub use directory::PatientDirectory;
pub use service::PatientApi;
