//! `impl_store_by!`: implements [`Store`](crate::Store) for a type that hands every call
//! to another store, so that the wrappers (the backends' public newtypes, `AnyStore`, the
//! fault-injecting `FaultyStore`) do not each spell out the whole trait.
//!
//! `impl_store_by!(impl[GENERICS] TYPE => VIA)` writes every method as
//! `VIA!(KIND, self, s => s.METHOD(ARGS))`, where `VIA` is a macro that finds the inner
//! store `s` and awaits the call, and `KIND` is `write` for the methods that commit
//! something and `read` for the others (`close` counts as a read), for a wrapper that
//! treats writes differently.

/// A `VIA` for a newtype over a store: hands every call to the store in field 0.
macro_rules! via_newtype {
    ($kind:ident, $self:ident, $s:ident => $call:expr) => {{
        let $s = &$self.0;
        $call.await
    }};
}

/// See the module docs.
macro_rules! impl_store_by {
    (impl[$($generics:tt)*] $ty:ty => $via:ident) => {
        impl<$($generics)*> $crate::Store for $ty {
            async fn submit_job(&self, job: $crate::NewJob) -> Result<$crate::Submitted, $crate::StoreError> {
                $via!(write, self, s => s.submit_job(job))
            }

            async fn get_job(&self, job_id: &str) -> Result<$crate::Job, $crate::StoreError> {
                $via!(read, self, s => s.get_job(job_id))
            }

            async fn list_jobs(
                &self,
                taskdb: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Job>, $crate::StoreError> {
                $via!(read, self, s => s.list_jobs(taskdb, after, limit))
            }

            async fn list_unfinished_jobs(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Job>, $crate::StoreError> {
                $via!(read, self, s => s.list_unfinished_jobs(after, limit))
            }

            async fn find_jobs(
                &self,
                filter: &xchange_filter::Filter,
                taskdb: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Job>, $crate::StoreError> {
                $via!(read, self, s => s.find_jobs(filter, taskdb, after, limit))
            }

            async fn transition(&self, t: $crate::Transition) -> Result<$crate::Job, $crate::StoreError> {
                $via!(write, self, s => s.transition(t))
            }

            async fn job_counts_by_taskdb(&self) -> Result<Vec<$crate::TaskDbJobCounts>, $crate::StoreError> {
                $via!(read, self, s => s.job_counts_by_taskdb())
            }

            async fn completed_latency(
                &self,
                taskdb: &str,
            ) -> Result<Option<$crate::LatencySummary>, $crate::StoreError> {
                $via!(read, self, s => s.completed_latency(taskdb))
            }

            async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<$crate::Event>, $crate::StoreError> {
                $via!(read, self, s => s.events_after(after, limit))
            }

            async fn last_event_id(&self) -> Result<i64, $crate::StoreError> {
                $via!(read, self, s => s.last_event_id())
            }

            async fn put_taskdb(
                &self,
                task_listing_db_id: &str,
                document: serde_json::Value,
                expected_version: Option<i64>,
                now_ms: i64,
            ) -> Result<$crate::TaskDb, $crate::StoreError> {
                $via!(write, self, s => s.put_taskdb(task_listing_db_id, document, expected_version, now_ms))
            }

            async fn get_taskdb(&self, task_listing_db_id: &str) -> Result<$crate::TaskDb, $crate::StoreError> {
                $via!(read, self, s => s.get_taskdb(task_listing_db_id))
            }

            async fn delete_taskdb(&self, task_listing_db_id: &str) -> Result<(), $crate::StoreError> {
                $via!(write, self, s => s.delete_taskdb(task_listing_db_id))
            }

            async fn list_taskdbs(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::TaskDb>, $crate::StoreError> {
                $via!(read, self, s => s.list_taskdbs(after, limit))
            }

            async fn find_taskdbs(
                &self,
                filter: &xchange_filter::Filter,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::TaskDb>, $crate::StoreError> {
                $via!(read, self, s => s.find_taskdbs(filter, after, limit))
            }

            async fn put_org(
                &self,
                org_id: &str,
                document: serde_json::Value,
                expected_version: Option<i64>,
                now_ms: i64,
            ) -> Result<$crate::Org, $crate::StoreError> {
                $via!(write, self, s => s.put_org(org_id, document, expected_version, now_ms))
            }

            async fn get_org(&self, org_id: &str) -> Result<$crate::Org, $crate::StoreError> {
                $via!(read, self, s => s.get_org(org_id))
            }

            async fn delete_org(&self, org_id: &str) -> Result<(), $crate::StoreError> {
                $via!(write, self, s => s.delete_org(org_id))
            }

            async fn list_orgs(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Org>, $crate::StoreError> {
                $via!(read, self, s => s.list_orgs(after, limit))
            }

            async fn subscribe(&self, taskdb: &str, subject_id: &str, now_ms: i64) -> Result<bool, $crate::StoreError> {
                $via!(write, self, s => s.subscribe(taskdb, subject_id, now_ms))
            }

            async fn unsubscribe(&self, taskdb: &str, subject_id: &str) -> Result<bool, $crate::StoreError> {
                $via!(write, self, s => s.unsubscribe(taskdb, subject_id))
            }

            async fn subscribers(
                &self,
                taskdb: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Subscription>, $crate::StoreError> {
                $via!(read, self, s => s.subscribers(taskdb, after, limit))
            }

            async fn subscriptions_of(
                &self,
                subject_id: &str,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Subscription>, $crate::StoreError> {
                $via!(read, self, s => s.subscriptions_of(subject_id, after, limit))
            }

            async fn put_agent_card(
                &self,
                agent_id: &str,
                card: serde_json::Value,
                now_ms: i64,
            ) -> Result<$crate::AgentCard, $crate::StoreError> {
                $via!(write, self, s => s.put_agent_card(agent_id, card, now_ms))
            }

            async fn get_agent_card(&self, agent_id: &str) -> Result<$crate::AgentCard, $crate::StoreError> {
                $via!(read, self, s => s.get_agent_card(agent_id))
            }

            async fn delete_agent_card(&self, agent_id: &str) -> Result<(), $crate::StoreError> {
                $via!(write, self, s => s.delete_agent_card(agent_id))
            }

            async fn list_agent_cards(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::AgentCard>, $crate::StoreError> {
                $via!(read, self, s => s.list_agent_cards(after, limit))
            }

            async fn find_agent_cards(
                &self,
                filter: &xchange_filter::Filter,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::AgentCard>, $crate::StoreError> {
                $via!(read, self, s => s.find_agent_cards(filter, after, limit))
            }

            async fn put_template(
                &self,
                name: &str,
                schema: serde_json::Value,
                now_ms: i64,
            ) -> Result<$crate::Template, $crate::StoreError> {
                $via!(write, self, s => s.put_template(name, schema, now_ms))
            }

            async fn get_template(&self, name: &str) -> Result<$crate::Template, $crate::StoreError> {
                $via!(read, self, s => s.get_template(name))
            }

            async fn list_templates(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Template>, $crate::StoreError> {
                $via!(read, self, s => s.list_templates(after, limit))
            }

            async fn list_unfinished_jobs_in(
                &self,
                partition: i32,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::Job>, $crate::StoreError> {
                $via!(read, self, s => s.list_unfinished_jobs_in(partition, after, limit))
            }

            async fn node_alive(
                &self,
                node_id: &str,
                url: &str,
                starting: bool,
            ) -> Result<i64, $crate::StoreError> {
                $via!(write, self, s => s.node_alive(node_id, url, starting))
            }

            async fn clock_ms(&self) -> Result<i64, $crate::StoreError> {
                $via!(read, self, s => s.clock_ms())
            }

            async fn cluster_nodes(&self) -> Result<Vec<$crate::ClusterNode>, $crate::StoreError> {
                $via!(read, self, s => s.cluster_nodes())
            }

            async fn ensure_partitions(&self, count: u32) -> Result<(), $crate::StoreError> {
                $via!(write, self, s => s.ensure_partitions(count))
            }

            async fn partition_leases(&self) -> Result<Vec<$crate::Lease>, $crate::StoreError> {
                $via!(read, self, s => s.partition_leases())
            }

            async fn acquire_partition(
                &self,
                partition: i32,
                node_id: &str,
                ttl_ms: i64,
            ) -> Result<Option<$crate::Lease>, $crate::StoreError> {
                $via!(write, self, s => s.acquire_partition(partition, node_id, ttl_ms))
            }

            async fn renew_partition(
                &self,
                fence: $crate::Fence,
                node_id: &str,
                ttl_ms: i64,
            ) -> Result<Option<i64>, $crate::StoreError> {
                $via!(write, self, s => s.renew_partition(fence, node_id, ttl_ms))
            }

            async fn release_partition(
                &self,
                fence: $crate::Fence,
                node_id: &str,
            ) -> Result<bool, $crate::StoreError> {
                $via!(write, self, s => s.release_partition(fence, node_id))
            }

            async fn create_api_key(&self, key: &$crate::ApiKey) -> Result<(), $crate::StoreError> {
                $via!(write, self, s => s.create_api_key(key))
            }

            async fn get_api_key(&self, key_id: &str) -> Result<$crate::ApiKey, $crate::StoreError> {
                $via!(read, self, s => s.get_api_key(key_id))
            }

            async fn list_api_keys(
                &self,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::ApiKey>, $crate::StoreError> {
                $via!(read, self, s => s.list_api_keys(after, limit))
            }

            async fn revoke_api_key(&self, key_id: &str, now_ms: i64) -> Result<$crate::ApiKey, $crate::StoreError> {
                $via!(write, self, s => s.revoke_api_key(key_id, now_ms))
            }

            async fn durability_settings(&self) -> Result<$crate::Durability, $crate::StoreError> {
                $via!(read, self, s => s.durability_settings())
            }

            async fn close(&self) {
                $via!(read, self, s => s.close())
            }
        }
    };
}
