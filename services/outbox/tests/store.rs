//! The outbox machinery on a real SQLite database in memory, with a sink of its own table:
//! what a worker claims, when it wakes, what each outcome records, parking and putting back.

// The entity below is the test's own table; its derive wants public items.
#![allow(unreachable_pub)]

use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use homecare_outbox::store::{self, Outcome};
use homecare_outbox::{Attempt, OutboxRow, RowState, Sink};
use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait as _,
};
use uuid::Uuid;

mod letters {
    use sea_orm::entity::prelude::*;

    /// A sink's table: the standard columns and its own (`address`).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "letters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub address: String,
        pub state: String,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        pub lease_until: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl OutboxRow for letters::Model {
    fn id(&self) -> Uuid {
        self.id
    }
    fn attempts(&self) -> i32 {
        self.attempts
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn lease_until(&self) -> Option<DateTime<Utc>> {
        self.lease_until
    }
}

/// Notes what the machinery told it about its domain.
#[derive(Default)]
struct PostOffice {
    delivered: Mutex<Vec<String>>,
    parked: Mutex<Vec<(String, bool)>>,
}

#[async_trait::async_trait]
impl Sink for PostOffice {
    type Entity = letters::Entity;
    type Row = letters::Model;
    type Batch = ();
    const NAME: &'static str = "letters";

    async fn prepare(&self, _rows: &[letters::Model]) {}

    async fn send(&self, _row: &letters::Model, (): &()) -> Attempt {
        Attempt::Delivered
    }

    async fn on_delivered(
        &self,
        _txn: &DatabaseTransaction,
        rows: &[letters::Model],
    ) -> Result<usize, DbErr> {
        let mut delivered = self.delivered.lock().unwrap();
        delivered.extend(rows.iter().map(|row| row.address.clone()));
        Ok(rows.len())
    }

    async fn on_parked(
        &self,
        _txn: &DatabaseTransaction,
        row: &letters::Model,
        _error: &str,
        refused: bool,
    ) -> Result<bool, DbErr> {
        self.parked
            .lock()
            .unwrap()
            .push((row.address.clone(), refused));
        Ok(true)
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap()
}

async fn database() -> DatabaseConnection {
    let mut options = ConnectOptions::new("sqlite::memory:");
    // One connection: each would have its own database in memory.
    options.max_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE letters (id uuid_text PRIMARY KEY, address TEXT NOT NULL, \
         state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at TEXT NOT NULL, \
         lease_until TEXT NULL, last_error TEXT NULL, created_at TEXT NOT NULL, \
         updated_at TEXT NOT NULL)",
    )
    .await
    .unwrap();
    db
}

async fn queue(db: &DatabaseConnection, address: &str, due: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    letters::Entity::insert(letters::ActiveModel::from(letters::Model {
        id,
        address: address.into(),
        state: RowState::Pending.as_stored().into(),
        attempts: 0,
        next_attempt_at: due,
        lease_until: None,
        last_error: None,
        created_at: due,
        updated_at: due,
    }))
    .exec_without_returning(db)
    .await
    .unwrap();
    id
}

async fn row(db: &DatabaseConnection, id: Uuid) -> letters::Model {
    store::find::<letters::Entity, _>(db, id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn due_rows_are_claimed_once_with_a_lease_and_an_attempt_counted() {
    let db = database().await;
    let first = queue(&db, "a", t0()).await;
    queue(&db, "b", t0() + Duration::seconds(1)).await;
    queue(&db, "later", t0() + Duration::hours(1)).await;
    let lease = t0() + Duration::minutes(1);

    let claimed = store::claim::<letters::Entity>(&db, t0() + Duration::seconds(1), lease, 10)
        .await
        .unwrap();
    let mut addresses: Vec<&str> = claimed.iter().map(|row| row.address.as_str()).collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["a", "b"], "only due rows");
    assert!(claimed.iter().all(|row| row.attempts == 1));
    assert_eq!(row(&db, first).await.lease_until, Some(lease));

    let again = store::claim::<letters::Entity>(&db, t0() + Duration::seconds(2), lease, 10)
        .await
        .unwrap();
    assert!(again.is_empty(), "leased rows are not claimed twice");
    // The leased rows come back when their lease ends, before the later row is due.
    assert_eq!(
        store::next_due::<letters::Entity>(&db).await.unwrap(),
        Some(lease)
    );
    let after_lease = store::claim::<letters::Entity>(&db, lease, lease + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(after_lease.len(), 2);
    assert!(after_lease.iter().all(|row| row.attempts == 2));
}

#[tokio::test]
async fn a_deferred_row_waits_uncounted_and_a_reopen_makes_it_due_again() {
    let db = database().await;
    let held = queue(&db, "held", t0()).await;
    let failed = queue(&db, "failed", t0()).await;
    let lease = t0() + Duration::minutes(1);
    let claimed = store::claim::<letters::Entity>(&db, t0(), lease, 10)
        .await
        .unwrap();
    let morning = t0() + Duration::hours(9);
    let outcomes = claimed
        .into_iter()
        .map(|row| {
            let outcome = if row.id == held {
                Outcome::Deferred {
                    reason: "quiet",
                    until: morning,
                }
            } else {
                Outcome::Retry {
                    error: "provider down".into(),
                    next_attempt_at: morning,
                }
            };
            (row, outcome)
        })
        .collect();
    store::record(&db, &PostOffice::default(), outcomes, t0())
        .await
        .unwrap();
    let waiting = row(&db, held).await;
    assert_eq!(waiting.attempts, 0, "a deferral is no attempt");
    assert_eq!(waiting.next_attempt_at, morning);
    assert_eq!(waiting.lease_until, None);
    assert_eq!(waiting.last_error.as_deref(), Some("quiet"));
    assert_eq!(row(&db, failed).await.attempts, 1);

    // Judged again: only the deferred row is due now, and only for its own reason.
    let later = t0() + Duration::minutes(5);
    assert_eq!(
        store::reopen::<letters::Entity>(&db, None, "other", later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store::reopen::<letters::Entity>(&db, None, "quiet", later)
            .await
            .unwrap(),
        1,
        "a row waiting after a failed attempt is left to its backoff"
    );
    assert_eq!(row(&db, held).await.next_attempt_at, later);
    assert_eq!(row(&db, failed).await.next_attempt_at, morning);
}

#[tokio::test]
async fn a_dead_lease_does_not_hide_a_row_that_is_due_sooner() {
    let db = database().await;
    queue(&db, "in flight", t0()).await;
    let lease = t0() + Duration::minutes(10);
    store::claim::<letters::Entity>(&db, t0(), lease, 1)
        .await
        .unwrap();
    let soon = t0() + Duration::seconds(5);
    queue(&db, "retry soon", soon).await;
    assert_eq!(
        store::next_due::<letters::Entity>(&db).await.unwrap(),
        Some(soon)
    );
}

#[tokio::test]
async fn outcomes_are_recorded_and_reach_the_sink_s_domain() {
    let db = database().await;
    let delivered = queue(&db, "delivered", t0()).await;
    let retried = queue(&db, "retried", t0()).await;
    let refused = queue(&db, "refused", t0()).await;
    let gave_up = queue(&db, "gave up", t0()).await;
    let rows = store::claim::<letters::Entity>(&db, t0(), t0() + Duration::minutes(1), 10)
        .await
        .unwrap();
    let next = t0() + Duration::seconds(30);
    let outcomes = rows
        .into_iter()
        .map(|row| {
            let outcome = match row.address.as_str() {
                "delivered" => Outcome::Delivered,
                "retried" => Outcome::Retry {
                    error: "HTTP 503".into(),
                    next_attempt_at: next,
                },
                "refused" => Outcome::Parked {
                    error: "HTTP 422".into(),
                    refused: true,
                },
                _ => Outcome::Parked {
                    error: "gave up".into(),
                    refused: false,
                },
            };
            (row, outcome)
        })
        .collect();
    let sink = PostOffice::default();
    let changed = store::record(&db, &sink, outcomes, t0()).await.unwrap();
    assert_eq!(
        changed, 3,
        "one delivered and two parked changed the domain"
    );
    assert_eq!(*sink.delivered.lock().unwrap(), ["delivered"]);
    let mut parked = sink.parked.lock().unwrap().clone();
    parked.sort();
    assert_eq!(
        parked,
        [("gave up".to_owned(), false), ("refused".to_owned(), true)]
    );

    assert_eq!(row(&db, delivered).await.state, "delivered");
    let retried = row(&db, retried).await;
    assert_eq!(retried.state, "pending");
    assert_eq!(retried.next_attempt_at, next);
    assert_eq!(retried.lease_until, None);
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(row(&db, refused).await.state, "failed");

    // Parked rows are listed oldest first, and one put back is due at once, counted afresh.
    let (page, _) =
        store::parked_page::<letters::Entity, _>(&db, sea_orm::Condition::all(), None, 10)
            .await
            .unwrap();
    assert_eq!(page.len(), 2);
    let back = store::unpark::<letters::Entity, _>(&db, gave_up, t0() + Duration::hours(1))
        .await
        .unwrap()
        .expect("it was parked");
    assert_eq!((back.state.as_str(), back.attempts), ("pending", 0));
    assert!(
        store::unpark::<letters::Entity, _>(&db, delivered, t0())
            .await
            .unwrap()
            .is_none(),
        "only a parked row is put back"
    );
}

#[tokio::test]
async fn an_outcome_for_a_row_taken_over_by_another_worker_is_not_recorded() {
    let db = database().await;
    let id = queue(&db, "slow", t0()).await;
    let mine = store::claim::<letters::Entity>(&db, t0(), t0() + Duration::minutes(1), 1)
        .await
        .unwrap();
    // The lease ran out; another worker delivered it.
    let theirs = store::claim::<letters::Entity>(
        &db,
        t0() + Duration::minutes(2),
        t0() + Duration::minutes(3),
        1,
    )
    .await
    .unwrap();
    let sink = PostOffice::default();
    store::record(
        &db,
        &sink,
        vec![(theirs[0].clone(), Outcome::Delivered)],
        t0(),
    )
    .await
    .unwrap();
    let late = vec![(
        mine[0].clone(),
        Outcome::Parked {
            error: "late".into(),
            refused: true,
        },
    )];
    assert_eq!(store::record(&db, &sink, late, t0()).await.unwrap(), 0);
    assert_eq!(row(&db, id).await.state, "delivered");
    assert!(sink.parked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_late_outcome_does_not_land_while_the_new_holder_still_sends() {
    let db = database().await;
    let id = queue(&db, "slow", t0()).await;
    let mine = store::claim::<letters::Entity>(&db, t0(), t0() + Duration::minutes(1), 1)
        .await
        .unwrap();
    // The lease ran out; another worker holds the row and has not answered yet.
    let theirs_until = t0() + Duration::minutes(3);
    store::claim::<letters::Entity>(&db, t0() + Duration::minutes(2), theirs_until, 1)
        .await
        .unwrap();
    let sink = PostOffice::default();
    let late = vec![(mine[0].clone(), Outcome::Delivered)];
    assert_eq!(store::record(&db, &sink, late, t0()).await.unwrap(), 0);
    let held = row(&db, id).await;
    assert_eq!(
        (held.state.as_str(), held.lease_until),
        ("pending", Some(theirs_until)),
        "the row is still the new holder's to record"
    );
    assert!(sink.delivered.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_outcome_the_sink_recorded_itself_is_not_written_again() {
    let db = database().await;
    let id = queue(&db, "recorded by the sink", t0()).await;
    let lease = t0() + Duration::minutes(1);
    let claimed = store::claim::<letters::Entity>(&db, t0(), lease, 1)
        .await
        .unwrap();
    let sink = PostOffice::default();
    let recorded = vec![(claimed[0].clone(), Outcome::Recorded)];
    assert_eq!(store::record(&db, &sink, recorded, t0()).await.unwrap(), 0);
    let untouched = row(&db, id).await;
    assert_eq!(
        (untouched.state.as_str(), untouched.lease_until),
        ("pending", Some(lease)),
        "the row is as the claim (here standing for the sink) left it"
    );
    assert!(sink.delivered.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_backlog_counts_waiting_and_parked_rows_and_finds_the_oldest_due() {
    let db = database().await;
    assert_eq!(
        store::backlog::<letters::Entity, _>(&db, t0())
            .await
            .unwrap(),
        store::Backlog::default()
    );
    queue(&db, "due long ago", t0() - Duration::minutes(10)).await;
    queue(&db, "due now", t0()).await;
    queue(&db, "not yet due", t0() + Duration::minutes(5)).await;
    let refused = queue(&db, "refused", t0() - Duration::minutes(20)).await;
    let claimed = store::claim::<letters::Entity>(&db, t0(), t0() + Duration::minutes(1), 10)
        .await
        .unwrap();
    let refused_row = claimed.into_iter().find(|row| row.id == refused).unwrap();
    store::record(
        &db,
        &PostOffice::default(),
        vec![(
            refused_row,
            Outcome::Parked {
                error: "no such address".into(),
                refused: true,
            },
        )],
        t0(),
    )
    .await
    .unwrap();

    let backlog = store::backlog::<letters::Entity, _>(&db, t0())
        .await
        .unwrap();
    assert_eq!(backlog.pending, 3);
    assert_eq!(backlog.parked, 1);
    assert_eq!(backlog.oldest_due, Some(t0() - Duration::minutes(10)));
    // Before anything is due, nothing has waited.
    let early = store::backlog::<letters::Entity, _>(&db, t0() - Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(early.oldest_due, None);
}
