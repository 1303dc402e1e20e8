//! The tables of this crate, as sea-orm entities. The tables are defined in
//! `homecare-migrations`. The visit's own entity is also this module's, for brevity at its
//! many uses.

pub mod appointment;
pub mod appointment_event;
pub mod epj_outbox;
pub mod rows;

pub use appointment::*;
