//! The tables of this crate, as sea-orm entities (defined in `homecare-migrations`).

pub mod delivery;
pub mod follow;
pub mod notice;
pub mod settings;
