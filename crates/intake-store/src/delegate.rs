//! The map from each [`Store`](crate::Store) method to the concern that answers it,
//! written once for both backends. A backend is a module with one submodule per concern —
//! `admin` (companies, keys, tokens), `rates`, `integrations` (with their schemas),
//! `queue` (requests, claims, leases, batches, reports, the new-work signal), `records`
//! (reads and upkeep of the stored versions) and `history` (records as of a time, and
//! where their versions came from) — each with a function per method, taking the
//! store first. `impl_store!(Type, "name")` in the backend's `mod.rs` is its whole
//! `impl Store`.
//!
//! What both backends must do alike before a method reaches its concern is done here, once:
//! the text checks of [`crate::text`] (a value with NUL is refused, a look-up by one finds
//! nothing, error descriptions are escaped).

macro_rules! impl_store {
    ($store:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn create_company(&self, name: &str) -> $crate::Result<$crate::Company> {
                $crate::text::storable("company name", name)?;
                admin::create_company(self, name).await
            }
            async fn list_companies(&self) -> $crate::Result<Vec<$crate::Company>> {
                admin::list_companies(self).await
            }
            async fn company_by_name(&self, name: &str) -> $crate::Result<Option<$crate::Company>> {
                if !$crate::text::can_be_stored(name) {
                    return Ok(None);
                }
                admin::company_by_name(self, name).await
            }
            async fn insert_access_key(
                &self,
                company: $crate::CompanyId,
                key: &str,
                secret_hash: &[u8],
            ) -> $crate::Result<()> {
                $crate::text::storable("access key", key)?;
                admin::insert_access_key(self, company, key, secret_hash).await
            }
            async fn list_access_keys(&self) -> $crate::Result<Vec<$crate::AccessKeyInfo>> {
                admin::list_access_keys(self).await
            }
            async fn revoke_access_key(&self, key: &str) -> $crate::Result<bool> {
                if !$crate::text::can_be_stored(key) {
                    return Ok(false);
                }
                admin::revoke_access_key(self, key).await
            }
            async fn insert_token(
                &self,
                company: $crate::CompanyId,
                token_id: &str,
                secret_hash: &[u8],
                scopes: &[String],
            ) -> $crate::Result<()> {
                $crate::text::storable("token id", token_id)?;
                for scope in scopes {
                    $crate::text::storable("scope", scope)?;
                }
                admin::insert_token(self, company, token_id, secret_hash, scopes).await
            }
            async fn list_tokens(&self) -> $crate::Result<Vec<$crate::TokenInfo>> {
                admin::list_tokens(self).await
            }
            async fn revoke_token(&self, token_id: &str) -> $crate::Result<bool> {
                if !$crate::text::can_be_stored(token_id) {
                    return Ok(false);
                }
                admin::revoke_token(self, token_id).await
            }
            async fn find_access_key(
                &self,
                key: &str,
            ) -> $crate::Result<Option<$crate::StoredCredential>> {
                if !$crate::text::can_be_stored(key) {
                    return Ok(None);
                }
                admin::find_access_key(self, key).await
            }
            async fn find_token(
                &self,
                token_id: &str,
            ) -> $crate::Result<Option<$crate::StoredCredential>> {
                if !$crate::text::can_be_stored(token_id) {
                    return Ok(None);
                }
                admin::find_token(self, token_id).await
            }

            async fn insert_ui_session(
                &self,
                session: &$crate::UiSession,
                expired_before_ms: i64,
            ) -> $crate::Result<()> {
                admin::insert_ui_session(self, session, expired_before_ms).await
            }
            async fn touch_ui_session(
                &self,
                id_hash: &[u8],
                now_ms: i64,
                expired_before_ms: i64,
            ) -> $crate::Result<Option<$crate::UiSession>> {
                admin::touch_ui_session(self, id_hash, now_ms, expired_before_ms).await
            }
            async fn delete_ui_session(&self, id_hash: &[u8]) -> $crate::Result<()> {
                admin::delete_ui_session(self, id_hash).await
            }

            async fn hit_rate_limit(
                &self,
                company: $crate::CompanyId,
                limits: $crate::RateLimits,
                now_unix_ms: i64,
            ) -> $crate::Result<$crate::RateDecision> {
                rates::hit_rate_limit(self, company, limits, now_unix_ms).await
            }

            async fn register_integration(
                &self,
                company: $crate::CompanyId,
                name: &str,
                owner_email: &str,
            ) -> $crate::Result<$crate::Integration> {
                $crate::text::storable("name", name)?;
                $crate::text::storable("ownerEmail", owner_email)?;
                integrations::register_integration(self, company, name, owner_email).await
            }
            async fn list_integrations(
                &self,
                company: $crate::CompanyId,
            ) -> $crate::Result<Vec<$crate::Integration>> {
                integrations::list_integrations(self, company).await
            }
            async fn find_integration(
                &self,
                company: $crate::CompanyId,
                id: $crate::IntegrationId,
            ) -> $crate::Result<Option<$crate::Integration>> {
                integrations::find_integration(self, company, id).await
            }
            async fn request_integration_delete(
                &self,
                company: $crate::CompanyId,
                id: $crate::IntegrationId,
                client_request_id: &str,
            ) -> $crate::Result<()> {
                $crate::text::storable("clientRequestId", client_request_id)?;
                integrations::request_integration_delete(self, company, id, client_request_id).await
            }
            async fn get_schema(
                &self,
                integration: $crate::IntegrationId,
                object_type: Option<intake_model::ObjectType>,
            ) -> $crate::Result<Vec<(intake_model::ObjectType, intake_model::FieldDef)>> {
                integrations::get_schema(self, integration, object_type).await
            }
            async fn replace_schema(
                &self,
                integration: $crate::IntegrationId,
                object_type: intake_model::ObjectType,
                plan: &intake_model::SchemaPlan,
            ) -> $crate::Result<()> {
                for field in &plan.keep {
                    $crate::text::storable("uniqueName", &field.unique_name)?;
                }
                integrations::replace_schema(self, integration, object_type, plan).await
            }

            async fn client_request_id_used(
                &self,
                company: $crate::CompanyId,
                client_request_id: &str,
            ) -> $crate::Result<bool> {
                if !$crate::text::can_be_stored(client_request_id) {
                    return Ok(false);
                }
                queue::client_request_id_used(self, company, client_request_id).await
            }
            async fn insert_upload(
                &self,
                upload: &$crate::NewUpload,
            ) -> $crate::Result<$crate::RequestSeq> {
                $crate::text::storable("clientRequestId", &upload.client_request_id)?;
                $crate::text::storable("spool file", &upload.spool_file)?;
                queue::insert_upload(self, upload).await
            }
            async fn request_report(
                &self,
                company: $crate::CompanyId,
                client_request_id: &str,
            ) -> $crate::Result<Option<$crate::RequestReport>> {
                if !$crate::text::can_be_stored(client_request_id) {
                    return Ok(None);
                }
                queue::request_report(self, company, client_request_id).await
            }
            async fn claim_work(
                &self,
                worker: &str,
                lease: std::time::Duration,
            ) -> $crate::Result<Option<$crate::ClaimedWork>> {
                queue::claim_work(self, worker, lease).await
            }
            async fn heartbeat(
                &self,
                seq: $crate::RequestSeq,
                worker: &str,
                lease: std::time::Duration,
            ) -> $crate::Result<Result<(), $crate::LeaseLost>> {
                queue::heartbeat(self, seq, worker, lease).await
            }
            async fn apply_batch(
                &self,
                work: &$crate::ClaimedWork,
                worker: &str,
                batch: &$crate::Batch,
            ) -> $crate::Result<Result<(), $crate::LeaseLost>> {
                let batch = $crate::text::escape_batch(batch);
                queue::apply_batch(self, work, worker, &batch).await
            }
            async fn finish_work(
                &self,
                seq: $crate::RequestSeq,
                worker: &str,
                status: $crate::RequestStatus,
                fatal_error: Option<&str>,
            ) -> $crate::Result<Result<(), $crate::LeaseLost>> {
                let fatal_error = fatal_error.map($crate::text::escape_nul);
                queue::finish_work(self, seq, worker, status, fatal_error.as_deref()).await
            }
            async fn release_leases(&self, worker: &str) -> $crate::Result<()> {
                queue::release_leases(self, worker).await
            }
            async fn wait_for_work(&self, max: std::time::Duration) {
                queue::wait_for_work(self, max).await
            }

            async fn purge_integration(
                &self,
                integration: $crate::IntegrationId,
            ) -> $crate::Result<()> {
                records::purge_integration(self, integration).await
            }
            async fn maintain(&self, idle: bool) -> $crate::Result<bool> {
                records::maintain(self, idle).await
            }
            async fn current_objects(
                &self,
                integration: $crate::IntegrationId,
                object_type: intake_model::ObjectType,
                ids: &[String],
            ) -> $crate::Result<std::collections::HashMap<String, Option<String>>> {
                for id in ids {
                    $crate::text::storable("objectId", id)?;
                }
                records::current_objects(self, integration, object_type, ids).await
            }
            async fn versions(
                &self,
                integration: $crate::IntegrationId,
                object_type: intake_model::ObjectType,
                object_id: &str,
            ) -> $crate::Result<Vec<$crate::Version>> {
                $crate::text::storable("objectId", object_id)?;
                records::versions(self, integration, object_type, object_id).await
            }
            async fn records_after(
                &self,
                integration: $crate::IntegrationId,
                object_type: intake_model::ObjectType,
                after: &str,
                count: usize,
                as_of: i64,
            ) -> $crate::Result<Vec<(String, Option<$crate::RecordState>)>> {
                history::records_after(self, integration, object_type, after, count, as_of).await
            }
            async fn for_each_current(
                &self,
                integration: $crate::IntegrationId,
                object_type: intake_model::ObjectType,
                as_of: i64,
                each: &mut $crate::EachRecord<'_>,
            ) -> $crate::Result<()> {
                history::for_each_current(self, integration, object_type, as_of, each).await
            }
            async fn board_records(
                &self,
                integration: $crate::IntegrationId,
                object_type: intake_model::ObjectType,
                as_of: i64,
            ) -> $crate::Result<$crate::BoardRecords> {
                board::board_records(self, integration, object_type, as_of).await
            }
            async fn board_integrations(
                &self,
                asked_since_ms: i64,
            ) -> $crate::Result<Vec<($crate::IntegrationId, bool)>> {
                board::board_integrations(self, asked_since_ms).await
            }
            async fn board_asked(
                &self,
                integration: $crate::IntegrationId,
                at_ms: i64,
            ) -> $crate::Result<()> {
                board::board_asked(self, integration, at_ms).await
            }
            async fn forget_board(&self, integration: $crate::IntegrationId) {
                self.board_cache.forget(integration)
            }
            async fn request_origins(
                &self,
                seqs: &[$crate::RequestSeq],
            ) -> $crate::Result<std::collections::HashMap<$crate::RequestSeq, $crate::RequestOrigin>>
            {
                history::request_origins(self, seqs).await
            }

            async fn list_requests(
                &self,
                company: $crate::CompanyId,
                integration: $crate::IntegrationId,
                filter: &$crate::RequestFilter,
                before: Option<$crate::RequestSeq>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::RequestInfo>> {
                requests::list_requests(self, company, integration, filter, before, limit).await
            }
            async fn request_info(
                &self,
                company: $crate::CompanyId,
                crid: &str,
            ) -> $crate::Result<Option<$crate::RequestInfo>> {
                if !$crate::text::can_be_stored(crid) {
                    return Ok(None);
                }
                requests::request_info(self, company, crid).await
            }
            async fn cancel_request(
                &self,
                company: $crate::CompanyId,
                crid: &str,
            ) -> $crate::Result<Option<$crate::CancelOutcome>> {
                if !$crate::text::can_be_stored(crid) {
                    return Ok(None);
                }
                requests::cancel_request(self, company, crid).await
            }

            async fn read_snapshot(
                &self,
                integration: $crate::IntegrationId,
            ) -> $crate::Result<Box<dyn $crate::ReadSnapshot>> {
                lookups::read_snapshot(self, integration).await
            }
            async fn domain_settings(
                &self,
                integration: $crate::IntegrationId,
            ) -> $crate::Result<$crate::DomainSettings> {
                lookups::settings(self, integration).await
            }
            async fn put_domain_settings(
                &self,
                integration: $crate::IntegrationId,
                settings: &$crate::DomainSettings,
            ) -> $crate::Result<()> {
                for domain in settings
                    .internal_domains
                    .iter()
                    .chain(&settings.excluded_domains)
                {
                    $crate::text::storable("domain", domain)?;
                }
                lookups::put_settings(self, integration, settings).await
            }
            async fn erase_records(
                &self,
                integration: $crate::IntegrationId,
                records: &[(intake_model::ObjectType, String)],
                asked: &str,
            ) -> $crate::Result<u64> {
                if !$crate::text::can_be_stored(asked) {
                    return Ok(0);
                }
                lookups::erase_records(self, integration, records, asked).await
            }

            async fn readiness(&self) -> Vec<$crate::NotReady> {
                ops::readiness(self).await
            }
            async fn request_counts(
                &self,
            ) -> $crate::Result<Vec<($crate::RequestStatus, u64)>> {
                ops::request_counts(self).await
            }
            async fn error_source(
                &self,
                company: $crate::CompanyId,
                crid: &str,
            ) -> $crate::Result<Option<$crate::ErrorSource>> {
                if !$crate::text::can_be_stored(crid) {
                    return Ok(None);
                }
                webhooks::error_source(self, company, crid).await
            }
            async fn integration_sidecars(
                &self,
                integration: $crate::IntegrationId,
            ) -> $crate::Result<Vec<($crate::RequestSeq, $crate::SidecarMark)>> {
                webhooks::integration_sidecars(self, integration).await
            }
            async fn replace_sidecar(
                &self,
                seq: $crate::RequestSeq,
                old: &str,
                new: &$crate::SidecarMark,
            ) -> $crate::Result<bool> {
                webhooks::replace_sidecar(self, seq, old, new).await
            }
            async fn create_webhook(
                &self,
                company: $crate::CompanyId,
                url: &str,
                secret: &str,
            ) -> $crate::Result<i64> {
                $crate::text::storable("url", url)?;
                $crate::text::storable("secret", secret)?;
                webhooks::create_webhook(self, company, url, secret).await
            }
            async fn list_webhooks(
                &self,
                company: $crate::CompanyId,
            ) -> $crate::Result<Vec<$crate::Webhook>> {
                webhooks::list_webhooks(self, company).await
            }
            async fn delete_webhook(
                &self,
                company: $crate::CompanyId,
                webhook: i64,
            ) -> $crate::Result<bool> {
                webhooks::delete_webhook(self, company, webhook).await
            }
            async fn list_deliveries(
                &self,
                company: $crate::CompanyId,
                webhook: i64,
                limit: usize,
            ) -> $crate::Result<Option<Vec<$crate::Delivery>>> {
                webhooks::list_deliveries(self, company, webhook, limit).await
            }
            async fn claim_deliveries(
                &self,
                sender: &str,
                lease: std::time::Duration,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::DueDelivery>> {
                webhooks::claim_deliveries(self, sender, lease, limit).await
            }
            async fn record_attempt(
                &self,
                delivery: i64,
                sender: &str,
                outcome: $crate::AttemptOutcome,
            ) -> $crate::Result<()> {
                webhooks::record_attempt(self, delivery, sender, outcome).await
            }
            async fn request_by_seq(
                &self,
                seq: $crate::RequestSeq,
            ) -> $crate::Result<Option<$crate::RequestInfo>> {
                webhooks::request_by_seq(self, seq).await
            }
        }
    };
}

pub(crate) use impl_store;
