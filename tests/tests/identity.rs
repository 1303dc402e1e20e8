//! The synthetic identity numbers of the national test registers are accepted only by a
//! server told to (a municipality's test environment), and each server decides for itself.

use homecare_tests::{
    Backend, TestServer, authorized, error_reason, on_every_backend, violated_fields, visit,
};

/// A Tenor test person's number (born 15 March 1940: month + 80), with valid check digits.
fn tenor_person() -> String {
    let weights_1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    let weights_2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let check = |digits: &[u32], weights: &[u32]| match 11
        - digits.iter().zip(weights).map(|(d, w)| d * w).sum::<u32>() % 11
    {
        11 => Some(0),
        10 => None,
        digit => Some(digit),
    };
    (100..500)
        .find_map(|individual| {
            let mut digits: Vec<u32> = format!("158340{individual}")
                .bytes()
                .map(|b| u32::from(b - b'0'))
                .collect();
            digits.push(check(&digits, &weights_1)?);
            digits.push(check(&digits, &weights_2)?);
            Some(digits.iter().map(u32::to_string).collect())
        })
        .expect("an individual number with check digits")
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
