//! Home visits: the plan the EPJ keeps up to date, read by patients and by staff.
//!
//! [`domain`] holds the rules as plain types and functions, [`store`] the queries, and
//! [`service`] the thin gRPC adapter.

pub mod cancellation;
pub mod capability;
pub mod care;
pub mod config;
pub mod domain;
pub mod entity;
pub mod events;
pub mod feed;
pub mod outbox;
pub mod service;
pub mod store;
pub mod upcoming;
pub mod visit_state;

pub use capability::Appointments;
pub use service::AppointmentApi;
