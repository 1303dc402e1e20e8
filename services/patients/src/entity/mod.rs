//! sea-orm entities of this context. The tables are defined in `homecare-migrations`.

pub mod access_log;
pub mod patient;
