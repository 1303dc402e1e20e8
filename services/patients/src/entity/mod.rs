//! sea-orm entities of this context. The tables are defined in `homecare-migrations`.

pub mod access_log;
pub mod access_log_entry;
pub mod access_log_patient_set;
pub mod access_log_patient_set_member;
pub mod access_log_read;
pub mod access_log_unspread_set;
pub mod patient;
pub mod proxy;
pub mod proxy_event;
pub mod terms_acceptance;
