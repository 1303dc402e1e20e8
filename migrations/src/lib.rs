//! Every table, index and constraint of homecare, as sea-orm migrations.
//!
//! The server runs [`Migrator::up`] at start-up (and `homecare migrate` runs it alone), on
//! SQLite and PostgreSQL alike. Times are stored in UTC.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_patients_and_appointments;
mod m20261123_000002_cancellations;
mod m20261123_000003_proxies_and_terms;
mod m20261125_000004_request_fingerprints;
mod m20261125_000005_event_log;
mod m20261125_000006_proxy_event_log;
mod m20261126_000007_notifications;
mod m20261126_000008_messaging;
mod m20261126_000009_access_log_journal;
mod m20261126_000010_access_log_patient_sets;
mod m20261127_000011_visit_log_order_index;

/// All migrations, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_patients_and_appointments::Migration),
            Box::new(m20261123_000002_cancellations::Migration),
            Box::new(m20261123_000003_proxies_and_terms::Migration),
            Box::new(m20261125_000004_request_fingerprints::Migration),
            Box::new(m20261125_000005_event_log::Migration),
            Box::new(m20261125_000006_proxy_event_log::Migration),
            Box::new(m20261126_000007_notifications::Migration),
            Box::new(m20261126_000008_messaging::Migration),
            Box::new(m20261126_000009_access_log_journal::Migration),
            Box::new(m20261126_000010_access_log_patient_sets::Migration),
            Box::new(m20261127_000011_visit_log_order_index::Migration),
        ]
    }
}
