//! sea-orm entities of this context. The tables are defined in `homecare-migrations`.

pub mod access_log;
pub mod access_log_journal;
pub mod patient;
pub mod proxy;
pub mod proxy_event;
pub mod terms_acceptance;
