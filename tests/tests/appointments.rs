//! Home visits end to end: the EPJ keeps the plan, patients and staff read it.

use chrono::Duration;
use homecare_proto::appointments::v1::{
    AppointmentStatus, GetAppointmentRequest, ListAppointmentsRequest,
    ListCareUnitAppointmentsRequest, ServiceType, UpsertAppointmentRequest,
};
use homecare_tests::people::{ACCEPTED_TERMS, ASTRID, BJARNE, STRANGER};
use homecare_tests::{
    Backend, TestServer, authorized, epj_ids, error_reason, on_every_backend, test_now,
    violated_fields, visit, visit_at,
};
use tonic::Code;

on_every_backend!(
    citizen_lists_own_upcoming_visits_in_time_order,
    same_plan_twice_changes_nothing_and_a_new_plan_bumps_the_version,
    changes_of_one_visit_at_once_each_land_once,
    thirty_two_writers_of_one_visit_are_all_answered_and_agree,
    citizen_never_sees_another_patients_visit,
    pages_walk_every_visit_exactly_once,
    page_token_from_other_filters_is_refused,
    date_range_limits_the_visits_listed,
    staff_list_their_own_units_day_in_oslo_time,
    staff_reads_are_written_to_the_access_log,
    journalled_reads_survive_the_upgrade_and_a_day_read_twice_is_one_set,
    reads_of_many_patients_and_of_one_reach_each_patients_log_alike,
    bad_upsert_names_every_wrong_field_and_stores_nothing,
    only_the_epj_integration_may_upsert,
    epj_id_of_another_patient_is_refused,
    unknown_citizen_represents_no_one,
    citizen_who_becomes_a_patient_is_found_at_once,
    staff_listing_a_patient_see_only_their_units_visits,
    oversized_request_is_refused_before_it_is_read,
    staff_page_through_a_unit_day,
);

async fn list(
    server: &TestServer,
    token: &str,
    request: ListAppointmentsRequest,
) -> Result<homecare_proto::appointments::v1::ListAppointmentsResponse, tonic::Status> {
    server
        .appointments()
        .list_appointments(authorized(token, request))
        .await
        .map(tonic::Response::into_inner)
}

async fn unit_day(
    server: &TestServer,
    token: &str,
    request: ListCareUnitAppointmentsRequest,
) -> Result<homecare_proto::appointments::v1::ListCareUnitAppointmentsResponse, tonic::Status> {
    server
        .appointments()
        .list_care_unit_appointments(authorized(token, request))
        .await
        .map(tonic::Response::into_inner)
}

/// One visit in unit-a two hours from now for each test person who accepted the terms: more
/// patients than a read stores as entries one by one.
async fn one_visit_each_in_unit_a(
    server: &TestServer,
) -> Vec<(&'static str, homecare_proto::appointments::v1::Appointment)> {
    let mut visits = Vec::new();
    for (n, person) in ACCEPTED_TERMS.iter().enumerate() {
        let visit = server
            .upsert(visit(&format!("v-{n}"), person, "unit-a", 2))
            .await
            .appointment
            .expect("appointment");
        visits.push((*person, visit));
    }
    visits
}

async fn citizen_lists_own_upcoming_visits_in_time_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.upsert(visit("v-later", ASTRID, "unit-a", 30)).await;
    server.upsert(visit("v-past", ASTRID, "unit-a", -5)).await;
    server.upsert(visit("v-soon", ASTRID, "unit-a", 2)).await;
    server.upsert(visit("v-other", BJARNE, "unit-a", 3)).await;

    let patient_id = server.own_patient_id(ASTRID).await;
    let response = list(
        &server,
        &server.citizen_token(ASTRID),
        ListAppointmentsRequest {
            patient_id: patient_id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("list");

    let epj_ids = epj_ids(&response.appointments);
    assert_eq!(epj_ids, ["v-soon", "v-later"]);
    assert!(response.next_page_token.is_empty());
    let soon = &response.appointments[0];
    assert_eq!(soon.patient_id, patient_id);
    assert_eq!(soon.care_unit_id, "unit-a");
    assert_eq!(soon.service_type, i32::from(ServiceType::HomeNursing));
    assert_eq!(soon.status, i32::from(AppointmentStatus::Planned));
    assert!(soon.citizen_cancellable);
    assert_eq!(soon.version, 1);
    assert_eq!(
        soon.window_start.as_ref().map(|t| t.seconds),
        Some((test_now() + Duration::hours(2)).timestamp())
    );

    let fetched = server
        .appointments()
        .get_appointment(authorized(
            &server.citizen_token(ASTRID),
            GetAppointmentRequest {
                patient_id,
                appointment_id: soon.id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .appointment
        .expect("appointment");
    assert_eq!(&fetched, soon);
    // The patient reading their own data is not an access by someone else.
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE actor_kind = 'staff'")
            .await,
        0
    );
    server.stop().await;
}

async fn same_plan_twice_changes_nothing_and_a_new_plan_bumps_the_version(backend: Backend) {
    let server = TestServer::start(backend).await;
    let plan = visit("v-1", ASTRID, "unit-a", 4);
    let first = server.upsert(plan.clone()).await;
    assert!(first.created && first.changed);
    let again = server.upsert(plan.clone()).await;
    assert!(!again.created && !again.changed);
    assert_eq!(again.appointment, first.appointment);

    let moved = UpsertAppointmentRequest {
        window_start: Some(homecare_core::timestamp::to_proto(
            test_now() + Duration::hours(6),
        )),
        window_end: Some(homecare_core::timestamp::to_proto(
            test_now() + Duration::hours(7),
        )),
        citizen_cancellable: false,
        ..plan
    };
    let changed = server.upsert(moved).await;
    assert!(!changed.created && changed.changed);
    let appointment = changed.appointment.expect("appointment");
    assert_eq!(appointment.id, first.appointment.expect("first").id);
    assert_eq!(appointment.version, 2);
    assert!(!appointment.citizen_cancellable);
    assert_eq!(server.count_rows("appointments").await, 1);
    // Two writes that changed something, each logged for the patient; the no-op is not.
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE action = 'appointments.write'")
            .await,
        2
    );
    server.stop().await;
}

/// The EPJ sending several changes of one visit at once: each is answered as a change, each
/// lands as its own version with its own event and access-log entry, and none overwrites
/// another unseen (a writer that read an older version tries again on the newer).
async fn changes_of_one_visit_at_once_each_land_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let plan = visit("v-1", ASTRID, "unit-a", 4);
    assert!(server.upsert(plan.clone()).await.created);
    let moved_by = |hours: i64| UpsertAppointmentRequest {
        window_start: Some(homecare_core::timestamp::to_proto(
            test_now() + Duration::hours(hours),
        )),
        window_end: Some(homecare_core::timestamp::to_proto(
            test_now() + Duration::hours(hours + 1),
        )),
        ..plan.clone()
    };
    let answers = tokio::join!(
        server.upsert(moved_by(5)),
        server.upsert(moved_by(6)),
        server.upsert(moved_by(7)),
    );
    let mut versions: Vec<i64> = [answers.0, answers.1, answers.2]
        .into_iter()
        .map(|answer| {
            assert!(answer.changed && !answer.created);
            answer.appointment.expect("appointment").version
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [2, 3, 4], "each change its own version");
    assert_eq!(
        server.count_rows("appointment_events").await,
        4,
        "created, then three changes"
    );
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE action = 'appointments.write'")
            .await,
        4
    );
    server.stop().await;
}

/// The EPJ syncing one visit with 32 parallel workers, each sending another window, while
/// the visit is new to us and again once it exists (as a day's sync with parallel workers, or retries racing their originals, do):
/// every call is answered OK, exactly one created the visit, every change is a version of
/// its own, and the history chains them to the stored visit with nothing written over unseen.
async fn thirty_two_writers_of_one_visit_are_all_answered_and_agree(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut window_of = std::collections::HashMap::new();
    let mut created = 0;
    let mut changes = 0;
    // Once while the visit is new, once more when it exists.
    for round in 0..2 {
        let plans: Vec<UpsertAppointmentRequest> = (0..32)
            .map(|n| visit("v-1", ASTRID, "unit-a", 24 + 32 * round + n))
            .collect();
        for answer in server.upsert_all_at_once(plans).await {
            let answer = answer.expect("every writer is answered OK");
            let appointment = answer.appointment.expect("appointment");
            created += usize::from(answer.created);
            changes += usize::from(answer.changed);
            if answer.changed {
                let window = appointment.window_start.expect("window");
                let earlier = window_of.insert(appointment.version, window);
                assert!(
                    earlier.is_none(),
                    "version {} answered twice",
                    appointment.version
                );
            }
        }
    }
    assert_eq!(created, 1, "one writer created it");
    let patient = server.own_patient_id(ASTRID).await;
    let listed = list(
        &server,
        &server.citizen_token(ASTRID),
        ListAppointmentsRequest {
            patient_id: patient.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("list")
    .appointments;
    assert_eq!(listed.len(), 1, "one visit, whatever the races");
    let stored = &listed[0];
    let history = server.history_seen_by(ASTRID, &patient, &stored.id).await;
    assert_eq!(
        history.len(),
        changes,
        "one event per change, the creation included"
    );
    assert_eq!(stored.version, i64::try_from(changes).expect("few"));
    assert_eq!(
        window_of.get(&stored.version),
        stored.window_start.as_ref(),
        "the stored window is the last change's"
    );
    homecare_tests::assert_history_chains(&history, &window_of);
    assert_eq!(
        server
            .count_rows("access_log_entries WHERE action = 'appointments.write'")
            .await,
        i64::try_from(changes).expect("few")
    );
    server.stop().await;
}

async fn citizen_never_sees_another_patients_visit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let bjarnes = server
        .upsert(visit("v-b", BJARNE, "unit-a", 3))
        .await
        .appointment
        .expect("appointment");
    server.upsert(visit("v-a", ASTRID, "unit-a", 3)).await;
    let astrid_id = server.own_patient_id(ASTRID).await;
    let astrid = server.citizen_token(ASTRID);

    let listing = list(
        &server,
        &astrid,
        ListAppointmentsRequest {
            patient_id: bjarnes.patient_id.clone(),
            ..Default::default()
        },
    )
    .await
    .expect_err("another patient's list");
    assert_eq!(listing.code(), Code::NotFound);

    for (patient_id, appointment_id) in [
        (bjarnes.patient_id.clone(), bjarnes.id.clone()),
        (astrid_id, bjarnes.id.clone()),
    ] {
        let status = server
            .appointments()
            .get_appointment(authorized(
                &astrid,
                GetAppointmentRequest {
                    patient_id,
                    appointment_id,
                },
            ))
            .await
            .expect_err("another patient's visit");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    // A patient id that does not exist looks exactly like one that is not yours.
    let unknown = list(
        &server,
        &astrid,
        ListAppointmentsRequest {
            patient_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        },
    )
    .await
    .expect_err("unknown patient");
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), listing.message());
    server.stop().await;
}

async fn pages_walk_every_visit_exactly_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    for i in 0..25 {
        // Pairs of visits share a start time, so the id must break ties.
        server
            .upsert(visit(&format!("v-{i:02}"), ASTRID, "unit-a", 1 + i / 2))
            .await;
    }
    let patient_id = server.own_patient_id(ASTRID).await;
    let token = server.citizen_token(ASTRID);

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = list(
            &server,
            &token,
            ListAppointmentsRequest {
                patient_id: patient_id.clone(),
                page_size: 10,
                page_token: page_token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("page");
        pages += 1;
        assert!(page.appointments.len() <= 10);
        seen.extend(page.appointments.into_iter().map(|a| a.epj_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..25).map(|i| format!("v-{i:02}")).collect();
    let mut sorted = seen.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "every visit once, none twice");
    server.stop().await;
}

async fn page_token_from_other_filters_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    for i in 0..3 {
        server
            .upsert(visit(&format!("v-{i}"), ASTRID, "unit-a", 1 + i))
            .await;
    }
    let patient_id = server.own_patient_id(ASTRID).await;
    let token = server.citizen_token(ASTRID);
    let first = list(
        &server,
        &token,
        ListAppointmentsRequest {
            patient_id: patient_id.clone(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    assert!(!first.next_page_token.is_empty());

    for request in [
        ListAppointmentsRequest {
            patient_id: patient_id.clone(),
            page_size: 1,
            end_time: Some(homecare_core::timestamp::to_proto(
                test_now() + Duration::days(1),
            )),
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        ListAppointmentsRequest {
            patient_id: patient_id.clone(),
            page_token: "garbage".into(),
            ..Default::default()
        },
    ] {
        let status = list(&server, &token, request).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_token"]);
    }

    let negative = list(
        &server,
        &token,
        ListAppointmentsRequest {
            patient_id,
            page_size: -1,
            ..Default::default()
        },
    )
    .await
    .expect_err("negative page size");
    assert_eq!(violated_fields(&negative), ["page_size"]);
    server.stop().await;
}

async fn date_range_limits_the_visits_listed(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (epj_id, hours) in [
        ("v-past", -30),
        ("v-today", 3),
        ("v-tomorrow", 27),
        ("v-next-week", 170),
    ] {
        server.upsert(visit(epj_id, ASTRID, "unit-a", hours)).await;
    }
    let patient_id = server.own_patient_id(ASTRID).await;
    let response = list(
        &server,
        &server.citizen_token(ASTRID),
        ListAppointmentsRequest {
            patient_id: patient_id.clone(),
            start_time: Some(homecare_core::timestamp::to_proto(
                test_now() - Duration::days(2),
            )),
            end_time: Some(homecare_core::timestamp::to_proto(
                test_now() + Duration::days(2),
            )),
            ..Default::default()
        },
    )
    .await
    .expect("list");
    let epj_ids = epj_ids(&response.appointments);
    assert_eq!(epj_ids, ["v-past", "v-today", "v-tomorrow"]);

    let backwards = list(
        &server,
        &server.citizen_token(ASTRID),
        ListAppointmentsRequest {
            patient_id,
            start_time: Some(homecare_core::timestamp::to_proto(test_now())),
            end_time: Some(homecare_core::timestamp::to_proto(
                test_now() - Duration::hours(1),
            )),
            ..Default::default()
        },
    )
    .await
    .expect_err("end before start");
    assert_eq!(backwards.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&backwards), ["end_time"]);
    server.stop().await;
}

async fn staff_list_their_own_units_day_in_oslo_time(backend: Backend) {
    use chrono::TimeZone as _;
    let server = TestServer::start(backend).await;
    let utc = |d, h, m| chrono::Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
    // Oslo is UTC+1 in December: 23:30 UTC on the 1st is 00:30 on the 2nd in Oslo.
    server
        .upsert(visit_at("a-1-late", ASTRID, "unit-a", utc(1, 22, 30)))
        .await;
    server
        .upsert(visit_at("a-2-early", ASTRID, "unit-a", utc(1, 23, 30)))
        .await;
    server
        .upsert(visit_at("a-2-noon", BJARNE, "unit-a", utc(2, 11, 0)))
        .await;
    server
        .upsert(visit_at("a-3", BJARNE, "unit-a", utc(2, 23, 0)))
        .await;
    server
        .upsert(visit_at("b-2", BJARNE, "unit-b", utc(2, 9, 0)))
        .await;

    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    let day = unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            date: "2026-12-02".into(),
            ..Default::default()
        },
    )
    .await
    .expect("unit day");
    let epj_ids = epj_ids(&day.appointments);
    assert_eq!(epj_ids, ["a-2-early", "a-2-noon"]);

    let other_unit = unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            care_unit_id: "unit-b".into(),
            date: "2026-12-02".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("not the nurse's unit");
    assert_eq!(other_unit.code(), Code::PermissionDenied);

    let bad_date = unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            date: "2026-13-02".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("no 13th month");
    assert_eq!(violated_fields(&bad_date), ["date"]);

    let citizen = unit_day(
        &server,
        &server.citizen_token(ASTRID),
        ListCareUnitAppointmentsRequest::default(),
    )
    .await
    .expect_err("citizens have no unit");
    assert_eq!(citizen.code(), Code::PermissionDenied);
    server.stop().await;
}

async fn staff_reads_are_written_to_the_access_log(backend: Backend) {
    let server = TestServer::start(backend).await;
    let astrids = server
        .upsert(visit("a-1", ASTRID, "unit-a", 2))
        .await
        .appointment
        .expect("appointment");
    server.upsert(visit("b-1", BJARNE, "unit-a", 3)).await;
    let writes = server.count_rows("access_log_entries").await;

    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            date: "2026-12-01".into(),
            ..Default::default()
        },
    )
    .await
    .expect("unit day");
    assert_eq!(
        server
            .count_rows(
                "access_log_entries WHERE actor_kind = 'staff' AND actor_subject = 'nurse-kari'"
            )
            .await,
        2
    );
    // One entry for each patient of the day, not two for one.
    assert_eq!(
        server
            .count_rows(
                "(SELECT DISTINCT patient_id FROM access_log_entries \
                 WHERE actor_subject = 'nurse-kari') AS read_patients"
            )
            .await,
        2
    );

    server
        .appointments()
        .get_appointment(authorized(
            &nurse,
            GetAppointmentRequest {
                patient_id: astrids.patient_id.clone(),
                appointment_id: astrids.id.clone(),
            },
        ))
        .await
        .expect("nurse reads a visit of her unit");
    assert_eq!(
        server
            .count_rows(&format!(
                "access_log_entries WHERE actor_subject = 'nurse-kari' AND resource_id = '{}'",
                astrids.id
            ))
            .await,
        2
    );

    // A nurse of another unit cannot read it, and that refusal reads nothing.
    let outsider = server.nurse_token("nurse-ola", &["unit-z"]);
    let status = server
        .appointments()
        .get_appointment(authorized(
            &outsider,
            GetAppointmentRequest {
                patient_id: astrids.patient_id,
                appointment_id: astrids.id,
            },
        ))
        .await
        .expect_err("other unit");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(server.count_rows("access_log_entries").await, writes + 3);
    server.stop().await;
}

/// A read of a unit's day that was journalled before the upgrade to sets of patients, and
/// not yet spread, is in each of its patients' logs after it; and the same day read twice
/// stores its set of patients once, while both reads are in each patient's log.
async fn journalled_reads_survive_the_upgrade_and_a_day_read_twice_is_one_set(backend: Backend) {
    use homecare_migrations::{Migrator, MigratorTrait as _};
    use homecare_proto::patients::v1::ListAccessLogRequest;
    use sea_orm::ConnectionTrait as _;

    let server = TestServer::start(backend).await;
    let patients: Vec<String> = one_visit_each_in_unit_a(&server)
        .await
        .into_iter()
        .map(|(_, visit)| visit.patient_id)
        .collect();
    assert!(patients.len() >= 8, "a read of this many names a set");
    // The schema as it was, with one journalled read of every patient.
    let since_sets = Migrator::migrations()
        .iter()
        .rev()
        .position(|migration| migration.name() == "m20261126_000010_access_log_patient_sets")
        .expect("the migration to sets of patients")
        + 1;
    Migrator::down(&server.db, Some(since_sets as u32))
        .await
        .expect("down");
    let touched: Vec<(String, Option<String>)> = patients
        .iter()
        .map(|patient| (patient.clone(), None))
        .collect();
    server
        .db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            server.db.get_database_backend(),
            match server.db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    "INSERT INTO access_log_journal (id, occurred_at, actor_kind, actor_subject, \
                     action, touched) VALUES ($1, $2, 'staff', 'nurse-before', \
                     'appointments.read', $3)"
                }
                _ => {
                    "INSERT INTO access_log_journal (id, occurred_at, actor_kind, actor_subject, \
                     action, touched) VALUES (?, ?, 'staff', 'nurse-before', \
                     'appointments.read', ?)"
                }
            },
            [
                uuid::Uuid::now_v7().into(),
                (test_now() - chrono::Duration::minutes(5)).into(),
                serde_json::to_string(&touched).unwrap().into(),
            ],
        ))
        .await
        .expect("journal a read");
    Migrator::up(&server.db, None).await.expect("up");

    let nurse = server.nurse_token("nurse-after", &["unit-a"]);
    for _ in 0..2 {
        unit_day(
            &server,
            &nurse,
            ListCareUnitAppointmentsRequest {
                date: "2026-12-01".into(),
                ..Default::default()
            },
        )
        .await
        .expect("unit day");
    }
    assert_eq!(server.count_rows("access_log_patient_sets").await, 2);
    for (person, patient_id) in ACCEPTED_TERMS.iter().zip(&patients) {
        // A page at a time, so each step's cursor falls between reads of sets and entries.
        let (mut log, mut page_token) = (Vec::new(), String::new());
        loop {
            let page = server
                .patients()
                .list_access_log(authorized(
                    &server.citizen_token(person),
                    ListAccessLogRequest {
                        patient_id: patient_id.clone(),
                        page_size: 1,
                        page_token,
                    },
                ))
                .await
                .expect("own log")
                .into_inner();
            log.extend(page.entries);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let reads: Vec<&str> = log
            .iter()
            .filter(|entry| entry.action == "appointments.read")
            .map(|entry| entry.actor_name.as_str())
            .collect();
        assert_eq!(
            reads,
            ["nurse-after", "nurse-after", "nurse-before"],
            "the log of {person}"
        );
        // Besides them, only the EPJ's upsert of the patient's visit, an entry of its own.
        let others: Vec<&str> = log
            .iter()
            .filter(|entry| entry.action != "appointments.read")
            .map(|entry| entry.action.as_str())
            .collect();
        assert_eq!(others, ["appointments.write"], "the log of {person}");
    }
    server.stop().await;
}

/// A read of a few patients stores their entries at once; a read of many, one row naming
/// its set of patients. Each patient's own log shows both kinds the same way: who read, what,
/// and the record when it was one.
async fn reads_of_many_patients_and_of_one_reach_each_patients_log_alike(backend: Backend) {
    use homecare_proto::patients::v1::ListAccessLogRequest;

    let server = TestServer::start(backend).await;
    let patients = one_visit_each_in_unit_a(&server).await;
    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    let day = unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            date: "2026-12-01".into(),
            ..Default::default()
        },
    )
    .await
    .expect("unit day");
    assert_eq!(day.appointments.len(), patients.len());
    let (_, astrids) = &patients[0];
    server
        .appointments()
        .get_appointment(authorized(
            &nurse,
            GetAppointmentRequest {
                patient_id: astrids.patient_id.clone(),
                appointment_id: astrids.id.clone(),
            },
        ))
        .await
        .expect("one visit");

    for (person, visit) in &patients {
        let entries = server
            .patients()
            .list_access_log(authorized(
                &server.citizen_token(person),
                ListAccessLogRequest {
                    patient_id: visit.patient_id.clone(),
                    page_size: 50,
                    page_token: String::new(),
                },
            ))
            .await
            .expect("own log")
            .into_inner()
            .entries;
        let reads: Vec<(&str, &str)> = entries
            .iter()
            .filter(|entry| entry.action == "appointments.read")
            .map(|entry| (entry.actor_name.as_str(), entry.resource_id.as_str()))
            .collect();
        if visit.id == astrids.id {
            // Newest first: the one visit, named, then the unit's day.
            assert_eq!(
                reads,
                [
                    ("nurse-kari", astrids.id.as_str()),
                    ("nurse-kari", visit.id.as_str())
                ],
                "{person}"
            );
        } else {
            assert_eq!(reads, [("nurse-kari", visit.id.as_str())], "{person}");
        }
    }
    server.stop().await;
}

async fn bad_upsert_names_every_wrong_field_and_stores_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let start = test_now() + Duration::hours(3);
    let request = UpsertAppointmentRequest {
        epj_id: "x".repeat(65),
        patient_national_id: "15034012367".into(), // wrong check digit
        care_unit_id: "unit a".into(),
        window_start: Some(homecare_core::timestamp::to_proto(start)),
        window_end: Some(homecare_core::timestamp::to_proto(
            start - Duration::minutes(1),
        )),
        service_type: 42,
        status: 0,
        citizen_cancellable: true,
        epj_version_id: String::new(),
    };
    let status = server
        .appointments()
        .upsert_appointment(authorized(&server.epj_token(), request))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "care_unit_id",
            "epj_id",
            "patient_national_id",
            "service_type",
            "status",
            "window_end"
        ]
    );
    assert!(
        !status.message().contains("15034012367"),
        "the identity number is not echoed back"
    );
    assert_eq!(server.count_rows("appointments").await, 0);
    assert_eq!(server.count_rows("patients").await, 0);

    let missing_window = server
        .appointments()
        .upsert_appointment(authorized(
            &server.epj_token(),
            UpsertAppointmentRequest {
                window_start: None,
                ..visit("v-1", ASTRID, "unit-a", 1)
            },
        ))
        .await
        .expect_err("no start");
    assert_eq!(violated_fields(&missing_window), ["window_start"]);
    server.stop().await;
}

async fn only_the_epj_integration_may_upsert(backend: Backend) {
    let server = TestServer::start(backend).await;
    for token in [
        server.citizen_token(ASTRID),
        server.nurse_token("nurse-kari", &["unit-a"]),
    ] {
        let status = server
            .appointments()
            .upsert_appointment(authorized(&token, visit("v-1", ASTRID, "unit-a", 1)))
            .await
            .expect_err("not the EPJ");
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    assert_eq!(server.count_rows("appointments").await, 0);
    server.stop().await;
}

async fn epj_id_of_another_patient_is_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 1)).await;
    let status = server
        .appointments()
        .upsert_appointment(authorized(
            &server.epj_token(),
            visit("v-1", BJARNE, "unit-a", 1),
        ))
        .await
        .expect_err("other patient");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        error_reason(&status).as_deref(),
        Some("EPJ_ID_OF_OTHER_PATIENT")
    );
    let astrid_id = server.own_patient_id(ASTRID).await;
    let astrids = list(
        &server,
        &server.citizen_token(ASTRID),
        ListAppointmentsRequest {
            patient_id: astrid_id,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(astrids.appointments.len(), 1);
    server.stop().await;
}

async fn unknown_citizen_represents_no_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.upsert(visit("v-1", ASTRID, "unit-a", 1)).await;
    let response = server
        .patients()
        .list_represented_patients(authorized(
            &server.citizen_token(STRANGER),
            homecare_proto::patients::v1::ListRepresentedPatientsRequest {},
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(response.patients.is_empty());
    server.stop().await;
}

async fn citizen_who_becomes_a_patient_is_found_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let stranger = server.citizen_token(STRANGER);
    let before = server
        .patients()
        .list_represented_patients(authorized(
            &stranger,
            homecare_proto::patients::v1::ListRepresentedPatientsRequest {},
        ))
        .await
        .expect("list")
        .into_inner();
    assert!(before.patients.is_empty());

    // The EPJ plans a first visit: the person is a patient from now on, not after a cache
    // expires.
    server.upsert(visit("v-first", STRANGER, "unit-a", 2)).await;
    let patient_id = server.own_patient_id(STRANGER).await;
    let visits = list(
        &server,
        &stranger,
        ListAppointmentsRequest {
            patient_id,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    assert_eq!(visits.appointments.len(), 1);
    server.stop().await;
}

async fn staff_listing_a_patient_see_only_their_units_visits(backend: Backend) {
    let server = TestServer::start(backend).await;
    for i in 0..3 {
        server
            .upsert(visit(&format!("b-{i}"), ASTRID, "unit-b", 1 + i))
            .await;
    }
    let in_a = server
        .upsert(visit("a-1", ASTRID, "unit-a", 5))
        .await
        .appointment
        .expect("appointment");
    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    let page = list(
        &server,
        &nurse,
        ListAppointmentsRequest {
            patient_id: in_a.patient_id.clone(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("list");
    // The unit filter is part of the query, so even a one-visit page is full.
    let epj_ids = epj_ids(&page.appointments);
    assert_eq!(epj_ids, ["a-1"]);
    assert!(page.next_page_token.is_empty());
    assert_eq!(
        server
            .count_rows(
                "access_log_entries WHERE actor_subject = 'nurse-kari' AND action = 'appointments.read'"
            )
            .await,
        1
    );
    server.stop().await;
}

async fn oversized_request_is_refused_before_it_is_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let huge = UpsertAppointmentRequest {
        epj_id: "x".repeat(homecare_server::MAX_REQUEST_BYTES + 1),
        ..visit("v-1", ASTRID, "unit-a", 1)
    };
    let status = server
        .appointments()
        .upsert_appointment(authorized(&server.epj_token(), huge))
        .await
        .expect_err("too large");
    // tonic answers an over-long message with OUT_OF_RANGE.
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(server.count_rows("appointments").await, 0);
    server.stop().await;
}

async fn staff_page_through_a_unit_day(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (i, pid) in [ASTRID, BJARNE, ASTRID].into_iter().enumerate() {
        server
            .upsert(visit(&format!("a-{i}"), pid, "unit-a", 1 + i as i64))
            .await;
    }
    let nurse = server.nurse_token("nurse-kari", &["unit-a"]);
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = unit_day(
            &server,
            &nurse,
            ListCareUnitAppointmentsRequest {
                date: "2026-12-01".into(),
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("page");
        seen.extend(page.appointments.into_iter().map(|a| a.epj_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["a-0", "a-1", "a-2"]);

    // A token is bound to its day.
    let first = unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            date: "2026-12-01".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .expect("first page");
    let other_day = unit_day(
        &server,
        &nurse,
        ListCareUnitAppointmentsRequest {
            date: "2026-12-02".into(),
            page_size: 1,
            page_token: first.next_page_token,
            ..Default::default()
        },
    )
    .await
    .expect_err("token of another day");
    assert_eq!(violated_fields(&other_day), ["page_token"]);
    server.stop().await;
}
