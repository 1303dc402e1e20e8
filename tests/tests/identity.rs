//! The synthetic identity numbers of the national test registers are accepted only by a
//! server told to (a municipality's test environment), and each server decides for itself.

use homecare_core::NationalIdentityNumber;
use homecare_tests::{
    Backend, TestServer, authorized, error_reason, on_every_backend, violated_fields, visit,
};

/// A Tenor test person's number (born 15 March 1940: month + 80).
fn tenor_person() -> String {
    let born = chrono::NaiveDate::from_ymd_opt(1940, 3, 15).unwrap();
    (100..500)
        .find_map(|individual| NationalIdentityNumber::synthesize_test_person(born, individual))
        .expect("an individual number with check digits")
        .expose()
        .to_owned()
}

on_every_backend!(only_a_server_told_to_accepts_the_test_registers_numbers);

async fn only_a_server_told_to_accepts_the_test_registers_numbers(backend: Backend) {
    let testing = TestServer::start_with(backend, |config| {
        config.identity.accept_synthetic = Some(true);
    })
    .await;
    let production = testing
        .start_beside(|config| config.identity.accept_synthetic = Some(false))
        .await;
    let person = tenor_person();

    let refused = production
        .appointments()
        .upsert_appointment(authorized(
            &production.epj_token(),
            visit("v-1", &person, "unit-a", 24),
        ))
        .await
        .expect_err("no test person in production");
    assert_eq!(violated_fields(&refused), ["patient_national_id"]);
    let refused = production
        .accept_terms(&person)
        .await
        .expect_err("no test person's token in production");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(error_reason(&refused).as_deref(), Some("INVALID_PID"));
    assert_eq!(testing.count_rows("patients").await, 0);

    let planned = testing.upsert(visit("v-1", &person, "unit-a", 24)).await;
    assert!(planned.appointment.is_some());
    let terms = testing.accept_terms(&person).await.expect("a test person");
    assert_eq!(terms.accepted_version, testing.config.terms.version);
    production.stop().await;
    testing.stop().await;
}
