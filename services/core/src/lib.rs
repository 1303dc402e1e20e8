//! Types every homecare context shares.
//!
//! Nothing here talks to a database or the network: identity numbers, the authenticated
//! caller, the clock, the mapping of errors to gRPC statuses, and page tokens.

pub mod cache;
pub mod calendar;
pub mod caller;
pub mod clock;
pub mod coherent;
pub mod db;
pub mod event_log;
pub mod idempotency;
pub mod identifier;
pub mod identity;
pub mod ids;
pub mod paging;
pub mod shutdown;
pub mod status;
pub mod stored;
pub mod text;
pub mod timestamp;
pub mod topic;

pub use caller::{Caller, StaffCaller};
pub use clock::{Clock, SystemClock};
pub use identity::{IdentityRules, NationalIdentityNumber};
