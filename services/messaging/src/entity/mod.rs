//! The tables of messaging, defined in `homecare-migrations`.

pub mod attachment;
pub mod event;
pub mod message;
pub mod read;
pub mod thread;
