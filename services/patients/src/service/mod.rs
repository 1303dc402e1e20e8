//! The gRPC face of this context: `homecare.patients.v1.PatientService`.
//!
//! Handlers are thin: decode and validate, resolve the actor, call the store, map the result.

use std::collections::HashMap;
use std::sync::Arc;

use homecare_core::paging::{self, Cursor, QueryKey};
use homecare_core::status::{self, FieldViolations};
use homecare_core::text::parse_line;
use homecare_core::{Caller, Clock, timestamp};
use homecare_proto::patients::v1 as pb;
use sea_orm::{DatabaseConnection, EntityTrait};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::access_log::{self, Action, ReadLog};
use crate::actor::{Actor, Actors, Need};
use crate::entity::{patient, proxy as proxy_entity, proxy_event};
use crate::proxy::{self, Basis};
use crate::proxy_rules::{
    check_grantor, check_proxy_fields, is_guardianship, refuse_if_patient_on_guardianship,
};
use crate::scope::{self, Scope, Scopes};
use crate::terms;

mod convert;

use convert::{access_entry_to_proto, proxy_to_proto};

/// The longest document reference accepted.
const MAX_DOCUMENT_REFERENCE_LEN: usize = 128;

/// Implements `homecare.patients.v1.PatientService`.
#[derive(Clone)]
pub struct PatientApi {
    db: DatabaseConnection,
    actors: Arc<Actors>,
    read_log: ReadLog,
    clock: Arc<dyn Clock>,
    time_zone: chrono_tz::Tz,
}

impl std::fmt::Debug for PatientApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientApi")
            .field("actors", &self.actors)
            .finish_non_exhaustive()
    }
}

impl PatientApi {
    /// A service over `db`; ages are counted in days of `time_zone`.
    pub fn new(
        db: DatabaseConnection,
        actors: Arc<Actors>,
        read_log: ReadLog,
        clock: Arc<dyn Clock>,
        time_zone: chrono_tz::Tz,
    ) -> Self {
        Self {
            db,
            actors,
            read_log,
            clock,
            time_zone,
        }
    }

    fn today(&self) -> chrono::NaiveDate {
        homecare_core::calendar::day_of(self.clock.now(), self.time_zone)
    }

    /// Who manages a patient's proxies: the patient themself, or staff of one of the
    /// patient's care units ([`Actors::for_patient`] answers NOT_FOUND to anyone else, and
    /// PERMISSION_DENIED PATIENT_ONLY to a proxy holder).
    async fn manager_of(&self, caller: &Caller, patient_id: &str) -> Result<(Actor, Uuid), Status> {
        Ok(self
            .actors
            .for_patient(caller, patient_id, Need::PatientThemself)
            .await?)
    }

    async fn proxy_response(
        &self,
        model: &proxy_entity::Model,
        staff_view: bool,
    ) -> Result<pb::Proxy, Status> {
        let history = proxy::histories(&self.db, [model.id])
            .await
            .map_err(status::from_db)?;
        proxy_to_proto(model, &history, staff_view, self.clock.now())
    }
}

fn parse_proxy_id(text: &str) -> Result<Uuid, Status> {
    homecare_core::identifier::parse_id(text, "id")
        .map_err(|error| status::invalid_argument("proxy_id", &error.to_string()))
}

#[tonic::async_trait]
impl pb::patient_service_server::PatientService for PatientApi {
    #[tracing::instrument(skip_all)]
    async fn get_terms_status(
        &self,
        request: Request<pb::GetTermsStatusRequest>,
    ) -> Result<Response<pb::GetTermsStatusResponse>, Status> {
        let pid = Caller::from_request(&request)?.require_citizen()?;
        let acceptances = terms::acceptances(&self.db, pid)
            .await
            .map_err(status::from_db)?;
        Ok(Response::new(pb::GetTermsStatusResponse {
            terms: Some(terms::status_of(
                self.actors.terms().policy(),
                &acceptances,
                self.clock.now(),
            )),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn accept_terms(
        &self,
        request: Request<pb::AcceptTermsRequest>,
    ) -> Result<Response<pb::AcceptTermsResponse>, Status> {
        let pid = Caller::from_request(&request)?.require_citizen()?;
        let policy = self.actors.terms().policy();
        let version = &request.get_ref().terms_version;
        if version.is_empty() {
            return Err(status::invalid_argument("terms_version", "is required"));
        }
        if *version != policy.version {
            return Err(status::invalid_argument(
                "terms_version",
                &format!("is not the version in force ({})", policy.version),
            ));
        }
        let now = self.clock.now();
        let txn = homecare_core::db::begin_write(&self.db)
            .await
            .map_err(status::from_db)?;
        terms::accept(&*txn, pid, version, now, policy.activation_delay)
            .await
            .map_err(status::from_db)?;
        txn.commit().await.map_err(status::from_db)?;
        let acceptances = terms::acceptances(&self.db, pid)
            .await
            .map_err(status::from_db)?;
        tracing::info!("terms of use accepted");
        Ok(Response::new(pb::AcceptTermsResponse {
            terms: Some(terms::status_of(policy, &acceptances, now)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_represented_patients(
        &self,
        request: Request<pb::ListRepresentedPatientsRequest>,
    ) -> Result<Response<pb::ListRepresentedPatientsResponse>, Status> {
        let pid = self.actors.citizen(Caller::from_request(&request)?).await?;
        let own_id = self.actors.own_patient_id(pid).await?;
        let mut patients: Vec<pb::RepresentedPatient> = own_id
            .map(|id| pb::RepresentedPatient {
                patient_id: id.to_string(),
                relation: pb::Relation::Self_.into(),
                scopes: Scopes::all().to_proto(),
                ..Default::default()
            })
            .into_iter()
            .collect();
        let usable = proxy::usable_by(&self.db, pid, self.clock.now())
            .await
            .map_err(status::from_db)?;
        patients.extend(usable.iter().map(|held| {
            pb::RepresentedPatient {
                patient_id: held.model.patient_id.to_string(),
                relation: if is_guardianship(&held.model) {
                    pb::Relation::Guardian
                } else {
                    pb::Relation::Proxy
                }
                .into(),
                scopes: held.terms.scopes.to_proto(),
                display_name: held.model.patient_name.clone(),
                proxy_id: held.model.id.to_string(),
                valid_until: held.terms.valid_to.map(timestamp::to_proto),
            }
        }));
        Ok(Response::new(pb::ListRepresentedPatientsResponse {
            patients,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn grant_proxy(
        &self,
        request: Request<pb::GrantProxyRequest>,
    ) -> Result<Response<pb::GrantProxyResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let now = self.clock.now();
        let mut violations = FieldViolations::new();
        let fields = check_proxy_fields(
            &mut violations,
            self.actors.identity_rules(),
            &message.holder_national_id,
            &message.holder_name,
            &message.patient_name,
            &message.scopes,
            message.valid_time.as_ref(),
            message.end_time.as_ref(),
            &message.request_id,
            now,
            self.today(),
        );
        violations.into_result()?;
        let fields = fields.expect("every missing value recorded a violation");

        let grantor = caller.require_citizen()?;
        let (actor, patient_id) = self
            .actors
            .for_patient(caller, &message.patient_id, Need::PatientThemself)
            .await?;
        check_grantor(
            grantor,
            &fields.holder,
            Basis::GrantedByPatient,
            self.today(),
        )?;
        // The patient has every scope over their own data; a proxy holder can never get here.
        if let Err(excess) = scope::beyond_grantor(Scopes::all(), fields.scopes) {
            return Err(status::invalid_argument(
                "scopes",
                &format!("grants more than the grantor has: {}", excess.to_stored()),
            ));
        }
        let model = proxy::create(
            &self.db,
            &actor,
            fields.into_new(patient_id, Basis::GrantedByPatient, None, &actor),
            now,
        )
        .await
        .map_err(Status::from)?;
        self.actors.kept_proxies().changed(model.patient_id);
        tracing::info!(proxy_id = %model.id, "proxy granted");
        Ok(Response::new(pb::GrantProxyResponse {
            proxy: Some(self.proxy_response(&model, false).await?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn register_proxy(
        &self,
        request: Request<pb::RegisterProxyRequest>,
    ) -> Result<Response<pb::RegisterProxyResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require_staff()?;
        let message = request.get_ref();
        let now = self.clock.now();
        let mut violations = FieldViolations::new();
        let fields = check_proxy_fields(
            &mut violations,
            self.actors.identity_rules(),
            &message.holder_national_id,
            &message.holder_name,
            &message.patient_name,
            &message.scopes,
            message.valid_time.as_ref(),
            message.end_time.as_ref(),
            &message.request_id,
            now,
            self.today(),
        );
        let basis = match pb::ProxyBasis::try_from(message.basis) {
            Ok(pb::ProxyBasis::PaperForm) => Some(Basis::PaperForm),
            Ok(pb::ProxyBasis::Guardianship) => Some(Basis::Guardianship),
            _ => {
                violations.add(
                    "basis",
                    "must be PROXY_BASIS_PAPER_FORM or PROXY_BASIS_GUARDIANSHIP",
                );
                None
            }
        };
        let document_reference = violations.check(
            "document_reference",
            parse_line(&message.document_reference, MAX_DOCUMENT_REFERENCE_LEN),
        );
        let (fields, basis, document_reference) =
            homecare_core::all_checked!(violations; fields, basis, document_reference)?;

        let (actor, patient_id) = self.manager_of(caller, &message.patient_id).await?;
        let patient = patient::Entity::find_by_id(patient_id)
            .one(&self.db)
            .await
            .map_err(status::from_db)?
            .ok_or_else(|| status::not_found("patient"))?;
        // Stored, so accepted when it came: read back under the widest rules.
        let grantor = homecare_core::IdentityRules {
            accept_synthetic: true,
        }
        .parse(&patient.national_id)
        .map_err(|error| status::internal(&error))?;
        check_grantor(&grantor, &fields.holder, basis, self.today())?;
        let model = proxy::create(
            &self.db,
            &actor,
            fields.into_new(patient_id, basis, Some(document_reference), &actor),
            now,
        )
        .await
        .map_err(Status::from)?;
        self.actors.kept_proxies().changed(model.patient_id);
        tracing::info!(proxy_id = %model.id, "proxy registered by staff");
        Ok(Response::new(pb::RegisterProxyResponse {
            proxy: Some(self.proxy_response(&model, true).await?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_proxy(
        &self,
        request: Request<pb::UpdateProxyRequest>,
    ) -> Result<Response<pb::UpdateProxyResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let now = self.clock.now();
        let mut violations = FieldViolations::new();
        let proxy_id = violations.check(
            "proxy_id",
            parse_proxy_id(&message.proxy_id).map_err(|status| status.message().to_owned()),
        );
        let mut scopes = None;
        let mut valid_to = None;
        let mut unknown_paths = false;
        if message.update_mask.is_empty() {
            violations.add("update_mask", "must name scopes, end_time or both");
        }
        for path in &message.update_mask {
            match path.as_str() {
                "scopes" => {
                    scopes = violations.check("scopes", scope::parse_scopes(&message.scopes))
                }
                "end_time" => {
                    valid_to = violations
                        .check("end_time", timestamp::optional(message.end_time.as_ref()))
                        .and_then(|to| match to {
                            Some(to) if to <= now => {
                                violations.add(
                                    "end_time",
                                    "must be in the future; use EndProxy to end it now",
                                );
                                None
                            }
                            to => Some(to),
                        });
                }
                // The path is the caller's text: named by position, never repeated back.
                _ => unknown_paths = true,
            }
        }
        if unknown_paths {
            violations.add(
                "update_mask",
                "names a field that cannot be changed; only scopes and end_time can",
            );
        }
        violations.into_result()?;
        let proxy_id = proxy_id.expect("checked");

        let (actor, patient_id) = self.manager_of(caller, &message.patient_id).await?;
        let current = proxy::find(&self.db, patient_id, proxy_id)
            .await
            .map_err(status::from_db)?
            .ok_or_else(|| status::not_found("proxy"))?;
        refuse_if_patient_on_guardianship(&actor, &current)?;
        if let Some(Some(to)) = valid_to
            && to <= current.valid_from
        {
            return Err(status::invalid_argument(
                "end_time",
                "must be after valid_time",
            ));
        }
        let model = proxy::change(
            &self.db, &actor, patient_id, proxy_id, scopes, valid_to, now,
        )
        .await
        .map_err(Status::from)?;
        self.actors.kept_proxies().changed(model.patient_id);
        tracing::info!(proxy_id = %model.id, "proxy changed");
        Ok(Response::new(pb::UpdateProxyResponse {
            proxy: Some(self.proxy_response(&model, !actor.is_citizen()).await?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn end_proxy(
        &self,
        request: Request<pb::EndProxyRequest>,
    ) -> Result<Response<pb::EndProxyResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let message = request.get_ref();
        let proxy_id = parse_proxy_id(&message.proxy_id)?;
        let (actor, patient_id) = self
            .actors
            .for_ending_proxy(caller, &message.patient_id, proxy_id)
            .await?;
        let current = proxy::find(&self.db, patient_id, proxy_id)
            .await
            .map_err(status::from_db)?
            .ok_or_else(|| status::not_found("proxy"))?;
        refuse_if_patient_on_guardianship(&actor, &current)?;
        let model = proxy::end(&self.db, &actor, patient_id, proxy_id, self.clock.now())
            .await
            .map_err(Status::from)?;
        self.actors.kept_proxies().changed(model.patient_id);
        tracing::info!(proxy_id = %model.id, by = actor.kind().as_stored(), "proxy ended");
        Ok(Response::new(pb::EndProxyResponse {
            proxy: Some(self.proxy_response(&model, !actor.is_citizen()).await?),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_proxies(
        &self,
        request: Request<pb::ListProxiesRequest>,
    ) -> Result<Response<pb::ListProxiesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let (actor, patient_id) = self
            .manager_of(caller, &request.get_ref().patient_id)
            .await?;
        let proxies = proxy::of_patient(&self.db, patient_id)
            .await
            .map_err(status::from_db)?;
        let mut histories: HashMap<Uuid, Vec<proxy_event::Model>> = HashMap::new();
        for event in proxy::histories(&self.db, proxies.iter().map(|proxy| proxy.id))
            .await
            .map_err(status::from_db)?
        {
            histories.entry(event.proxy_id).or_default().push(event);
        }
        let now = self.clock.now();
        self.read_log
            .record(&actor, [(patient_id, None)], Action::ReadProxies, now)
            .await?;
        let staff_view = !actor.is_citizen();
        Ok(Response::new(pb::ListProxiesResponse {
            proxies: proxies
                .iter()
                .map(|proxy| {
                    let history = histories.get(&proxy.id).map_or(&[][..], Vec::as_slice);
                    proxy_to_proto(proxy, history, staff_view, now)
                })
                .collect::<Result<_, _>>()?,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_access_log(
        &self,
        request: Request<pb::ListAccessLogRequest>,
    ) -> Result<Response<pb::ListAccessLogResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        if let Caller::Staff(_) = caller {
            return Err(status::permission_denied(
                "PATIENT_ONLY",
                "the access log is the patient's to read",
            ));
        }
        let message = request.get_ref();
        let mut violations = FieldViolations::new();
        let page_size = violations.check("page_size", paging::page_size(message.page_size));
        let query_key = QueryKey::named("access-log").with("patient", &message.patient_id);
        let cursor = violations.check(
            "page_token",
            Cursor::decode(&message.page_token, &query_key),
        );
        let (page_size, cursor) = homecare_core::all_checked!(violations; page_size, cursor)?;
        let (actor, patient_id) = self
            .actors
            .for_patient(
                caller,
                &message.patient_id,
                Need::Scope(Scope::ReadAccessLog),
            )
            .await?;
        let (rows, next) = access_log::page(&self.db, patient_id, cursor, page_size)
            .await
            .map_err(status::from_db)?;
        self.read_log
            .record(
                &actor,
                [(patient_id, None)],
                Action::ReadAccessLog,
                self.clock.now(),
            )
            .await?;
        Ok(Response::new(pb::ListAccessLogResponse {
            entries: rows.iter().map(access_entry_to_proto).collect(),
            next_page_token: next
                .map(|cursor| cursor.encode(&query_key))
                .unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_protected_address(
        &self,
        request: Request<pb::SetProtectedAddressRequest>,
    ) -> Result<Response<pb::SetProtectedAddressResponse>, Status> {
        Actor::epj_integration(Caller::from_request(&request)?)?;
        let message = request.get_ref();
        let pid = self
            .actors
            .identity_rules()
            .parse(&message.national_id)
            .map_err(|error| status::invalid_argument("national_id", &error.to_string()))?;
        let patient_id = proxy::set_protected_address(
            &self.db,
            &pid,
            message.protected_address,
            self.clock.now(),
        )
        .await
        .map_err(status::from_db)?;
        self.actors.kept_proxies().changed(patient_id);
        tracing::info!(%patient_id, protected = message.protected_address, "protected address set");
        Ok(Response::new(pb::SetProtectedAddressResponse {}))
    }
}
