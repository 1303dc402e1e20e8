//! Secure messaging between a patient (or their proxy) and the home-care service.
//!
//! A thread goes to one care unit; each citizen message is answered with a receipt whose
//! reply is due at the end of the first working day ([`thread::reply_due`]); staff work
//! through their units' inbox ([`inbox`]). Every step is an event of the thread's history
//! ([`history`]), which the staff stream and the notifier read. Attachment bytes live in the
//! blob store, never in the tables.

pub mod capability;
pub mod config;
pub mod content;
pub mod desk;
pub mod entity;
pub mod error;
pub mod history;
pub mod inbox;
pub mod office;
pub mod participant;
pub mod service;
pub mod thread;

pub use capability::Messaging;
pub use service::{InboxFeed, MessagingApi};
