//! The gRPC face of this context: `homecare.patients.v1.PatientService`.
//!
//! Handlers are thin: decode the request into its command (`commands`), resolve the actor,
//! call the store, map the result. Conversions to the contract's messages are in `convert`.

use std::collections::HashMap;
use std::sync::Arc;

use homecare_core::status;
use homecare_core::{Caller, Clock, timestamp};
use homecare_proto::patients::v1 as pb;
use sea_orm::{DatabaseConnection, EntityTrait};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::access_log::{self, Action, ReadLog};
use crate::actor::{Actor, Actors, Need};
use crate::entity::{patient, proxy as proxy_entity, proxy_event};
use crate::proxy::{self, Basis};
use crate::proxy_rules::{check_grantor, is_guardianship, refuse_if_patient_on_guardianship};
use crate::scope::{self, Scope, Scopes};
use crate::terms;

mod commands;
mod convert;

use convert::{access_entry_to_proto, proxy_to_proto};

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

    fn proxy_checks(&self, now: chrono::DateTime<chrono::Utc>) -> commands::ProxyChecks {
        commands::ProxyChecks {
            identity_rules: self.actors.identity_rules(),
            now,
            today: homecare_core::calendar::day_of(now, self.time_zone),
        }
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
        let commands::AcceptTerms { version } =
            commands::AcceptTerms::decode(request.get_ref(), &policy.version)?;
        let now = self.clock.now();
        let txn = homecare_core::db::begin_write(&self.db)
            .await
            .map_err(status::from_db)?;
        terms::accept(&*txn, pid, &version, now, policy.activation_delay)
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
        let commands::GrantProxy { fields } =
            commands::GrantProxy::decode(message, &self.proxy_checks(now))?;

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
        let commands::RegisterProxy {
            fields,
            basis,
            document_reference,
        } = commands::RegisterProxy::decode(message, &self.proxy_checks(now))?;

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
        let commands::UpdateProxy {
            proxy_id,
            scopes,
            valid_to,
        } = commands::UpdateProxy::decode(message, now)?;

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
        let commands::EndProxy { proxy_id } = message.try_into()?;
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
        let commands::ListAccessLog {
            page_size,
            cursor,
            query_key,
        } = message.try_into()?;
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
        let commands::SetProtectedAddress { person, protected } =
            commands::SetProtectedAddress::decode(message, self.actors.identity_rules())?;
        let patient_id =
            proxy::set_protected_address(&self.db, &person, protected, self.clock.now())
                .await
                .map_err(status::from_db)?;
        self.actors.kept_proxies().changed(patient_id);
        tracing::info!(%patient_id, protected, "protected address set");
        Ok(Response::new(pb::SetProtectedAddressResponse {}))
    }
}
