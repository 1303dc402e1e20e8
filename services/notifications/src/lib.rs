//! Notices by SMS and e-mail.
//!
//! Nothing in appointments or patients knows this crate exists: it reads their histories
//! (`appointment_events`, `proxy_events`) as durable consumers ([`plan`]), and each event that
//! someone should hear of becomes notices, written in the same transaction that moves the
//! consumer's cursor, so no committed change is left untold and none is told twice. Notices
//! wait in an outbox of messages ([`queue`]), merged per recipient and held through quiet
//! hours, and a sink per channel ([`sink`]) sends them.

pub mod callback;
pub mod capability;
pub mod config;
pub mod entity;
pub mod kind;
pub mod plan;
pub mod queue;
pub mod quiet;
pub mod retry;
pub mod service;
pub mod settings;
pub mod sink;
pub mod templates;

pub use capability::Notifications;
pub use service::NotificationApi;
