//! Fresh instances, each used for exactly one request: built from the component's grants,
//! and after a request the next one's built ahead, off the path of the response just sent.

use kite_engine::DecommitFlusher;
use kite_host::{ComponentGrants, InstanceState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, UpdateDeadline};
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};

/// A store with a never-run instance in it (only instantiation, including any start
/// functions, has happened).
pub struct FreshInstance {
    pub store: Store<InstanceState>,
    pub proxy: Proxy,
}

/// Builds one component's instances from its grants: a WASI 0.2 or 0.3 handler, on the
/// engine it was compiled for. Public for the `instance_cost` benchmark, which times
/// exactly the instances the server would build.
pub struct InstanceFactory {
    pre: ProxyPre<InstanceState>,
    engine: Engine,
    /// Whether its stores run guests in the concurrent engine's event loop.
    concurrent: bool,
    grants: ComponentGrants,
    timeout: Duration,
}

impl InstanceFactory {
    pub fn new(
        pre: ProxyPre<InstanceState>,
        engine: &Engine,
        grants: ComponentGrants,
        timeout: Duration,
    ) -> Self {
        InstanceFactory {
            pre,
            concurrent: engine.get_concurrency_support(),
            engine: engine.clone(),
            grants,
            timeout,
        }
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the guest runs in the store's event loop (`Store::run_concurrent`).
    pub fn is_concurrent(&self) -> bool {
        self.concurrent
    }

    /// Whether the component is a WASI 0.3 handler (`wasi:http/handler`).
    pub fn is_service(&self) -> bool {
        matches!(self.pre, ProxyPre::P3(_))
    }

    /// A store filled from the component's grants, with no instance and no deadline yet.
    /// On every epoch tick a running guest yields to the event loop, so a guest that
    /// computes for long never holds up other requests on its thread; past its deadline (see
    /// [`Self::start_deadline`]) it is interrupted.
    pub(crate) fn new_store(&self) -> anyhow::Result<Store<InstanceState>> {
        let mut store = Store::new(&self.engine, self.grants.instance_state()?);
        store.limiter(|state| state.limits());
        store.set_hostcall_fuel(kite_host::host_budget::MAX_BYTES_PER_HOST_CALL);
        if self.concurrent {
            // Streams, futures and subtasks are host state too: the same budget bounds them.
            let max = self.grants.max_resources();
            store.set_max_component_handles(max);
            if let Some(table) = store.concurrent_resource_table() {
                table.set_max_capacity(max);
            }
        }
        store.epoch_deadline_callback(|store| {
            Ok(if store.data().past_deadline() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        Ok(store)
    }

    /// Gives the store's guest the component's full deadline from now.
    pub fn start_deadline(&self, store: &mut Store<InstanceState>) {
        store.data_mut().set_deadline(Instant::now() + self.timeout);
        store.set_epoch_deadline(1);
    }

    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<Proxy> {
        self.pre.instantiate_async(store).await
    }

    /// A complete fresh instance, or `None` if one cannot be built now (no free slot, or
    /// the grants cannot be filled; a request will report why).
    pub async fn build(&self) -> Option<FreshInstance> {
        let mut store = self.new_store().ok()?;
        // Start functions, if the component has any, run under the same deadline (the
        // epoch stops guest code, the timeout a host call that waits); the request restarts
        // it when it takes the instance.
        self.start_deadline(&mut store);
        match tokio::time::timeout(self.timeout, self.instantiate(&mut store)).await {
            Ok(Ok(proxy)) => Some(FreshInstance { store, proxy }),
            Ok(Err(e)) => {
                tracing::debug!("an instance could not be built ahead: {e:#}");
                None
            }
            Err(_) => {
                tracing::debug!("an instance could not be built ahead: its start functions ran past the deadline");
                None
            }
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A bound on the instances built ahead across every trigger of a host of many apps, so
/// that apps without traffic now cannot hold the slots that requests need: in all, and for
/// each app.
pub struct AheadBudget {
    held: AtomicUsize,
    limit: usize,
    /// The most one app (one trigger) may hold.
    per_app: usize,
    /// Every trigger drawing on the budget, so that when slots run out any of them can be
    /// asked to give theirs back.
    holders: Mutex<Vec<std::sync::Weak<ReadyInstances>>>,
}

impl AheadBudget {
    pub fn new(limit: usize, per_app: usize) -> Arc<Self> {
        Arc::new(AheadBudget {
            held: AtomicUsize::new(0),
            limit,
            per_app: per_app.max(1),
            holders: Mutex::default(),
        })
    }

    fn register(&self, ready: &Arc<ReadyInstances>) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        holders.retain(|holder| holder.strong_count() > 0);
        holders.push(Arc::downgrade(ready));
    }

    /// Asks every app to drop its instances built ahead on `engine` (whose pool ran out);
    /// returns whether any did.
    fn release_everywhere(&self, engine: &Engine) -> bool {
        let holders: Vec<Arc<ReadyInstances>> = self
            .holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        let mut released = false;
        for holder in holders {
            released |= holder.release_on(Some(engine));
        }
        released
    }

    /// Instances built ahead now, across the host.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn try_reserve(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.limit).then_some(held + 1)
            })
            .is_ok()
    }

    fn release(&self, count: usize) {
        if count > 0 {
            self.held.fetch_sub(count, Ordering::AcqRel);
        }
    }
}

/// How long a request that finds every instance slot taken waits for slots that finished
/// requests are about to give back, before it is refused.
const SETTLE_WAIT: Duration = Duration::from_millis(100);

/// Instances built ahead, for every component of a trigger, shared by its worker threads.
/// Each holds an instance slot; when slots run out they are given back before a request
/// is refused.
pub(crate) struct ReadyInstances {
    /// Indexed by component.
    ready: Mutex<Vec<Vec<FreshInstance>>>,
    per_component: AtomicUsize,
    /// Finished requests whose instance is not yet dropped, or whose successor is still
    /// being built.
    settling: AtomicUsize,
    settled: Notify,
    /// Returns the memory used instances dirtied to the system (pooling allocator only).
    decommits: Option<Arc<DecommitFlusher>>,
    /// Shared with the other apps of a host; each instance in `ready` holds one place.
    budget: Option<Arc<AheadBudget>>,
    /// Bumped by [`Self::release_all`]: an instance whose build began before is not kept.
    generation: AtomicUsize,
}

impl ReadyInstances {
    /// For `components` components; keeps at most one instance ahead for each until told
    /// otherwise.
    pub(crate) fn new(
        components: usize,
        decommits: Option<Arc<DecommitFlusher>>,
        budget: Option<Arc<AheadBudget>>,
    ) -> Self {
        ReadyInstances {
            budget,
            generation: AtomicUsize::new(0),
            ready: Mutex::new((0..components).map(|_| Vec::new()).collect()),
            per_component: AtomicUsize::new(1),
            settling: AtomicUsize::new(0),
            settled: Notify::new(),
            decommits,
        }
    }

    /// See [`DecommitFlusher::flush_if_idle`]; called periodically by each worker thread.
    pub(crate) fn flush_decommits_if_idle(&self) {
        if let Some(decommits) = &self.decommits {
            decommits.flush_if_idle();
        }
    }

    /// Keeps at most `n` instances ahead for each component: one per worker thread lets
    /// every worker find one.
    pub(crate) fn keep_per_component(&self, n: usize) {
        self.per_component.store(n, Ordering::Relaxed);
    }

    fn per_component(&self) -> usize {
        self.per_component.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<FreshInstance>>> {
        // The list stays consistent whatever a panicking holder did, so a poisoned lock is
        // still usable.
        self.ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn take(&self, component: usize) -> Option<FreshInstance> {
        let taken = self.lock()[component].pop();
        if taken.is_some() {
            self.give_back(1);
        }
        taken
    }

    fn give_back(&self, count: usize) {
        if let Some(budget) = &self.budget {
            budget.release(count);
        }
    }

    fn has_room(&self, component: usize) -> bool {
        let ready = self.lock();
        let app_room = self
            .budget
            .as_ref()
            .is_none_or(|budget| ready.iter().map(Vec::len).sum::<usize>() < budget.per_app);
        app_room && ready[component].len() < self.per_component()
    }

    /// On a host of many apps, shares the budget's bound with every other app drawing on it.
    pub(crate) fn register_with_budget(self: &Arc<Self>) {
        if let Some(budget) = &self.budget {
            budget.register(self);
        }
    }

    /// After a request's handler has finished: once the response is out, drops the used
    /// instance and builds the next one for `component`.
    pub(crate) async fn after_request(
        &self,
        component: usize,
        factory: &InstanceFactory,
        used: Store<InstanceState>,
    ) {
        struct Settling<'a>(&'a ReadyInstances);
        impl Drop for Settling<'_> {
            fn drop(&mut self) {
                self.0.settling.fetch_sub(1, Ordering::AcqRel);
                self.0.settled.notify_waiters();
            }
        }
        self.settling.fetch_add(1, Ordering::AcqRel);
        let _settling = Settling(self);
        // Yielding lets the connection task write the response first.
        tokio::task::yield_now().await;
        let memory_bytes = used.data().memory_bytes() as u64;
        drop(used);
        // The flusher flushes the classic engine's pool; the concurrent engine's batches
        // flush when full.
        if let Some(decommits) = self.decommits.as_ref().filter(|_| !factory.is_concurrent()) {
            if decommits.note_dropped(memory_bytes) {
                decommits.flush();
            }
        }
        self.refill(component, factory).await;
    }

    /// Builds an instance of `component` ahead if it has fewer than its share.
    async fn refill(&self, component: usize, factory: &InstanceFactory) {
        if !self.has_room(component) {
            return;
        }
        if self
            .budget
            .as_ref()
            .is_some_and(|budget| !budget.try_reserve())
        {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(instance) = factory.build().await {
            let mut ready = self.lock();
            // Released meanwhile (the app went idle, or slots ran out): not kept.
            let released = self.generation.load(Ordering::Acquire) != generation;
            if !released && ready[component].len() < self.per_component() {
                ready[component].push(instance);
                return;
            }
        }
        self.give_back(1);
    }

    /// Drops every instance built ahead, freeing their slots. Returns whether there were any.
    pub(crate) fn release_all(&self) -> bool {
        self.release_on(None)
    }

    /// Drops the instances built ahead on `engine` (all of them for `None`): slots of one
    /// engine's pool do not make room in the other's. Returns whether there were any.
    fn release_on(&self, engine: Option<&Engine>) -> bool {
        let released: Vec<FreshInstance> = {
            let mut ready = self.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
            let mut released = Vec::new();
            for instances in ready.iter_mut() {
                let (gone, kept) = std::mem::take(instances).into_iter().partition(|instance| {
                    engine.is_none_or(|engine| Engine::same(instance.store.engine(), engine))
                });
                *instances = kept;
                released.extend::<Vec<FreshInstance>>(gone);
            }
            released
        };
        self.give_back(released.len());
        !released.is_empty()
    }
}

impl Drop for ReadyInstances {
    fn drop(&mut self) {
        self.release_all();
    }
}

/// Instantiates `factory`'s component in `store` for a request. When every slot is taken,
/// the instances built ahead give theirs back, and slots of finished requests are waited
/// for (up to [`SETTLE_WAIT`]), before the request is refused.
pub(crate) async fn instantiate_for_request(
    factory: &InstanceFactory,
    ready: &ReadyInstances,
    store: &mut Store<InstanceState>,
) -> wasmtime::Result<Proxy> {
    let mut waited = false;
    for _ in 0..3 {
        let settled = ready.settled.notified();
        match factory.instantiate(store).await {
            Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                let engine = factory.engine();
                let released = ready.release_on(Some(engine))
                    || ready
                        .budget
                        .as_ref()
                        .is_some_and(|budget| budget.release_everywhere(engine));
                if released {
                    continue;
                }
                if waited || ready.settling.load(Ordering::Acquire) == 0 {
                    return Err(e);
                }
                waited = true;
                let _ = tokio::time::timeout(SETTLE_WAIT, settled).await;
            }
            other => return other,
        }
    }
    factory.instantiate(store).await
}
