//! One logical client of the driver: executes the operations the
//! scheduler hands it (get, put, update, the cart's add and checkout), one
//! at a time, and records each in the history as it is sent and answered.
//! A stored value carries its id and (for the cart) its items.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_client::{Client, Error as ClientLibError};
use dynamo_core::protocol::{ClientError, ClientReply, ClientRequest};
use dynamo_core::version::VectorClock;
use dynamo_node::sync::Recover;

use super::{Scheduled, Shared, CACHED_CONTEXTS_MAX};
use crate::keys::Rng;
use crate::record::{Completion, Invoke};
use crate::spec::{OpKind, Routing};

/// A stored value: `<value id>\n<cart items, comma-separated>\n<padding>`.
fn encode_value(shared: &Shared, id: &str, items: Option<&[u64]>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(shared.spec.keys.value_bytes.max(id.len() + 2));
    bytes.extend_from_slice(id.as_bytes());
    bytes.push(b'\n');
    if let Some(items) = items {
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(format!("i{item}").as_bytes());
        }
        bytes.push(b'\n');
    }
    let missing = shared.spec.keys.value_bytes.saturating_sub(bytes.len());
    bytes.extend_from_slice(&shared.padding[..missing.min(shared.padding.len())]);
    bytes
}

/// The value id a stored value carries (its bytes up to the first newline).
pub(super) fn value_id(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&byte| byte == b'\n').unwrap_or(bytes.len());
    match std::str::from_utf8(&bytes[..end]) {
        Ok(id) if !id.is_empty() => id.to_string(),
        _ => format!(
            "unrecognised:{}",
            dynamo_core::codec::base64url_encode(&bytes[..end.min(32)])
        ),
    }
}

/// The cart items a stored value holds.
pub(super) fn cart_items(bytes: &[u8]) -> Vec<u64> {
    let mut lines = bytes.split(|&byte| byte == b'\n');
    let _id = lines.next();
    let Some(items) = lines.next() else { return Vec::new() };
    items
        .split(|&byte| byte == b',')
        .filter_map(|item| std::str::from_utf8(item).ok()?.strip_prefix('i')?.parse().ok())
        .collect()
}

/// One logical client: a process id (renewed after an indeterminate
/// outcome), its own connections, its contexts for `update`.
pub(super) struct Worker {
    shared: Arc<Shared>,
    client: Client,
    process: u64,
    contexts: HashMap<u64, (Vec<String>, VectorClock)>,
    measured: bool,
    /// Picks coordinators under `any-replica` and `random` routing (seeded
    /// from the spec's seed and the worker's first process id).
    rng: Rng,
}

/// A get's result in history terms.
pub(super) struct Read {
    ids: Vec<String>,
    pub(super) values: Vec<Vec<u8>>,
    context: VectorClock,
}

pub(super) enum Outcome<T> {
    /// Acknowledged (a get: answered).
    Done(T),
    /// Definitely did not take effect.
    Failed,
    /// A write that may or may not have taken effect (`info`).
    Unknown,
}

impl Worker {
    fn retire(&mut self) {
        self.process = self.shared.next_process.fetch_add(1, Ordering::Relaxed);
    }

    fn count_node(&self, addr: SocketAddr) {
        if self.measured {
            if let Some(name) = self.shared.node_names.get(&addr) {
                *self
                    .shared
                    .node_requests
                    .lock()
                    .recover()
                    .entry(name.clone())
                    .or_insert(0) += 1;
            }
        }
    }

    pub(super) async fn get(
        &mut self,
        key: u64,
        r: Option<usize>,
        order: Option<Vec<SocketAddr>>,
        is_final: bool,
    ) -> Outcome<Read> {
        let shared = self.shared.clone();
        let key_name = shared.key_name(key);
        let op = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let routed = match order {
            Some(order) => Ok(order),
            None => self.route(&key_name).await,
        };
        let node = shared.first_node(&routed);
        shared.history.invoke(&Invoke {
            process: self.process,
            op,
            f: "get",
            key: &key_name,
            value: None,
            context: None,
            node,
            is_final,
        });
        let order = match routed {
            Ok(order) => order,
            Err(error) => return self.not_sent(op, "get", &error.to_string()),
        };
        let request = ClientRequest::Get {
            key: key_name.clone().into_bytes(),
            r,
        };
        match self.client.request_routed(&order, request).await {
            Ok((ClientReply::Got { values, context }, addr)) => {
                self.count_node(addr);
                let ids: Vec<String> = values.iter().map(|value| value_id(value)).collect();
                shared.history.complete(self.process, op, "get", Completion::Got(&ids));
                if self.measured && !is_final {
                    *shared.versions_per_read.lock().recover().entry(ids.len()).or_insert(0) += 1;
                }
                Outcome::Done(Read { ids, values, context })
            }
            Ok((other, _)) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let error = format!("unexpected reply {other:?}");
                shared
                    .history
                    .complete(self.process, op, "get", Completion::Fail(&error));
                Outcome::Failed
            }
            Err(error) => {
                // A get has no effect: whatever went wrong, it did not
                // take effect.
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .history
                    .complete(self.process, op, "get", Completion::Fail(&error.to_string()));
                Outcome::Failed
            }
        }
    }

    /// An operation that could not even be routed (its invoke is written):
    /// failed, since nothing was sent.
    fn not_sent<T>(&mut self, op: u64, f: &str, error: &str) -> Outcome<T> {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        self.shared
            .history
            .complete(self.process, op, f, Completion::Fail(error));
        Outcome::Failed
    }

    /// Writes `value` (a delete with `None`) with `context`, whose value ids
    /// are `covered`. `items` are the cart's items for the stored bytes.
    async fn put(
        &mut self,
        key: u64,
        covered: Vec<String>,
        context: VectorClock,
        delete: bool,
        items: Option<&[u64]>,
    ) -> Outcome<u64> {
        let shared = self.shared.clone();
        let key_name = shared.key_name(key);
        let op = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let id = format!("v{op}");
        let f = if delete { "delete" } else { "put" };
        let routed = self.route(&key_name).await;
        let node = shared.first_node(&routed);
        shared.touched[key as usize].store(true, Ordering::Relaxed);
        shared.history.invoke(&Invoke {
            process: self.process,
            op,
            f,
            key: &key_name,
            value: Some(&id),
            context: Some(&covered),
            node,
            is_final: false,
        });
        let order = match routed {
            Ok(order) => order,
            // Nothing was sent: the write definitely did not happen.
            Err(error) => return self.not_sent(op, f, &error.to_string()),
        };
        let value = (!delete).then(|| encode_value(&shared, &id, items));
        let request = ClientRequest::Put {
            key: key_name.into_bytes(),
            context,
            value,
            w: None,
        };
        match self.client.request_routed(&order, request).await {
            Ok((ClientReply::Stored, addr)) => {
                self.count_node(addr);
                shared.history.complete(self.process, op, f, Completion::Stored);
                Outcome::Done(op)
            }
            Ok((
                ClientReply::Failed(
                    error @ (ClientError::BadRequest(_) | ClientError::ShuttingDown | ClientError::Unavailable(_)),
                ),
                addr,
            )) => {
                // Refused before anything was stored.
                self.count_node(addr);
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .history
                    .complete(self.process, op, f, Completion::Fail(&error.to_string()));
                Outcome::Failed
            }
            other => {
                // Timed out, storage failed, connection lost: the write may
                // have reached some replicas. Indeterminate; the process
                // id is retired.
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let error = match other {
                    Ok((reply, _)) => format!("{reply:?}"),
                    Err(ClientLibError::Failed(error)) => error.to_string(),
                    Err(error) => error.to_string(),
                };
                shared.history.complete(self.process, op, f, Completion::Info(&error));
                self.retire();
                Outcome::Unknown
            }
        }
    }

    fn remember(&mut self, key: u64, read: &Read) {
        if self.contexts.len() >= CACHED_CONTEXTS_MAX && !self.contexts.contains_key(&key) {
            if let Some(&old) = self.contexts.keys().next() {
                self.contexts.remove(&old);
            }
        }
        self.contexts.insert(key, (read.ids.clone(), read.context.clone()));
    }

    /// Runs one scheduled operation; true when every request succeeded.
    async fn execute(&mut self, kind: OpKind, key: u64) -> bool {
        let shared = self.shared.clone();
        shared.touched[key as usize].store(true, Ordering::Relaxed);
        match kind {
            OpKind::Read | OpKind::View => match self.get(key, None, None, false).await {
                Outcome::Done(read) => {
                    self.remember(key, &read);
                    true
                }
                Outcome::Failed | Outcome::Unknown => false,
            },
            OpKind::Write => matches!(
                self.put(key, Vec::new(), VectorClock::default(), false, None).await,
                Outcome::Done(_)
            ),
            OpKind::Update => {
                let (covered, context) = self.contexts.remove(&key).unwrap_or_default();
                matches!(self.put(key, covered, context, false, None).await, Outcome::Done(_))
            }
            OpKind::ReadModifyWrite | OpKind::Delete | OpKind::Add | OpKind::Checkout => {
                let Outcome::Done(read) = self.get(key, None, None, false).await else {
                    return false;
                };
                match kind {
                    OpKind::ReadModifyWrite => matches!(
                        self.put(key, read.ids, read.context, false, None).await,
                        Outcome::Done(_)
                    ),
                    OpKind::Delete => {
                        read.ids.is_empty()
                            || matches!(
                                self.put(key, read.ids, read.context, true, None).await,
                                Outcome::Done(_)
                            )
                    }
                    OpKind::Add => {
                        // Merge the siblings by union, add an item.
                        let mut items: Vec<u64> = read.values.iter().flat_map(|value| cart_items(value)).collect();
                        items.sort_unstable();
                        items.dedup();
                        let item = shared.next_op.fetch_add(1, Ordering::Relaxed);
                        items.push(item);
                        match self.put(key, read.ids, read.context, false, Some(&items)).await {
                            Outcome::Done(_) => {
                                shared.cart.lock().recover().added.entry(key).or_default().push(item);
                                true
                            }
                            Outcome::Failed | Outcome::Unknown => false,
                        }
                    }
                    _ => {
                        // Checkout: delete the cart that was read.
                        if read.ids.is_empty() {
                            return true;
                        }
                        let items: HashSet<u64> = read.values.iter().flat_map(|value| cart_items(value)).collect();
                        let outcome = self.put(key, read.ids, read.context, true, None).await;
                        // Acknowledged or indeterminate, these items may be
                        // gone: they are no longer owed to the final cart. A
                        // delete that definitely failed removed nothing.
                        if !matches!(outcome, Outcome::Failed) {
                            shared
                                .cart
                                .lock()
                                .recover()
                                .checked_out
                                .entry(key)
                                .or_default()
                                .extend(items);
                        }
                        matches!(outcome, Outcome::Done(_))
                    }
                }
            }
        }
    }
}

impl Worker {
    pub(super) fn new(client: Client, shared: Arc<Shared>, process: u64) -> Worker {
        let rng = Rng::new(shared.spec.seed ^ process.wrapping_mul(0x2545_f491_4f6c_dd1d));
        Worker {
            client,
            shared,
            process,
            contexts: HashMap::new(),
            measured: false,
            rng,
        }
    }

    /// The nodes to try for `key`, in order: its preference list, then
    /// every other member, with the first reordered by the spec's routing.
    async fn route(&mut self, key: &str) -> Result<Vec<SocketAddr>, ClientLibError> {
        let mut order = self.client.route(key.as_bytes()).await?;
        let replicas = self.shared.replicas.min(order.len());
        match self.shared.spec.load.routing {
            Routing::Preference => {}
            Routing::AnyReplica => {
                let pick = self.rng.below(replicas as u64) as usize;
                order[..replicas].rotate_left(pick);
            }
            Routing::Random => {
                let pick = self.rng.below(order.len() as u64) as usize;
                let chosen = order.remove(pick);
                order.insert(0, chosen);
            }
        }
        Ok(order)
    }

    /// Takes scheduled operations until the scheduler stops, one at a time,
    /// within the in-flight limit; records each one's latency from its
    /// intended start and from when it began.
    pub(super) async fn run(
        mut self,
        receiver: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Scheduled>>>,
        limit: Arc<tokio::sync::Semaphore>,
    ) {
        let shared = self.shared.clone();
        loop {
            let next = receiver.lock().await.recv().await;
            let Some(operation) = next else { break };
            if shared.history.failed() {
                // Unrecorded, an operation proves nothing: the queue drains
                // without running what is left of it.
                continue;
            }
            let Ok(_permit) = limit.acquire().await else { break };
            let began = Instant::now();
            // Waiting for a free client (or an in-flight slot), not the
            // scheduler's own timer slack (that is the lag above).
            if began.saturating_duration_since(operation.dispatched) > Duration::from_millis(1) {
                shared.queued.fetch_add(1, Ordering::Relaxed);
            }
            self.measured = operation.measured;
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let ok = self.execute(operation.kind, operation.key).await;
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            let done = Instant::now();
            let intended_us = done.saturating_duration_since(operation.intended).as_micros() as u64;
            let service_us = done.saturating_duration_since(began).as_micros() as u64;
            if operation.measured {
                shared
                    .recorder
                    .lock()
                    .recover()
                    .record(operation.kind.name(), intended_us, service_us, !ok);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_id_and_cart_items() {
        let bytes = b"v42\ni1,i7,i9\n....".to_vec();
        assert_eq!(value_id(&bytes), "v42");
        assert_eq!(cart_items(&bytes), vec![1, 7, 9]);
        assert_eq!(value_id(b"v3\n...."), "v3");
        assert!(cart_items(b"v3\n").is_empty());
        assert!(value_id(b"\xff\xfe").starts_with("unrecognised:"));
    }
}
