//! After the load: the final reads (every touched key through every node,
//! asking all N replicas, after a quiet period) and the cart's own figures
//! from them (acknowledged adds missing, deleted items returned).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dynamo_client::Client;
use dynamo_node::sync::Recover;

use super::worker::{cart_items, Outcome, Worker};
use super::{Shared, Target, FINAL_READERS};

/// The cart's own figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CartFigures {
    /// Acknowledged adds.
    pub adds_acknowledged: u64,
    /// Acknowledged adds missing from the final carts, not removed by a
    /// checkout (must be 0).
    pub adds_missing: u64,
    /// Items a checkout removed that came back in the final carts (the
    /// paper's known anomaly: reported, not a violation).
    pub deleted_items_returned: u64,
    /// Keys judged (those with a final read).
    pub carts_judged: u64,
    /// Some missing items, for the report: (key, item).
    pub missing_examples: Vec<(String, String)>,
}

#[derive(Default)]
pub(super) struct CartBook {
    /// Key → items whose add was acknowledged.
    pub(super) added: HashMap<u64, Vec<u64>>,
    /// Key → items a checkout saw and deleted (ok or info).
    pub(super) checked_out: HashMap<u64, HashSet<u64>>,
    /// Key → the items of its first final read.
    pub(super) finals: HashMap<u64, HashSet<u64>>,
}

/// Final reads: after a quiet period, every touched key through every
/// node, asking all N replicas. Returns the reads made, those that failed
/// (a node that cannot serve a read after every fault is healed) and the
/// keys touched.
pub(super) async fn final_reads(shared: &Arc<Shared>, target: &Target, progress: bool, skip: bool) -> (u64, u64, u64) {
    let spec = &shared.spec;
    let keys_touched: Vec<u64> = (0..spec.keys.count)
        .filter(|&key| shared.touched[key as usize].load(Ordering::Relaxed))
        .collect();
    if !spec.check.final_reads || skip {
        return (0, 0, keys_touched.len() as u64);
    }
    if progress {
        eprintln!(
            "quiet for {:.1}s, then final reads of {} keys through {} nodes (R = N = {})",
            spec.check.quiet.as_secs_f64(),
            keys_touched.len(),
            target.nodes.len(),
            target.n
        );
    }
    tokio::time::sleep(spec.check.quiet).await;
    let (reads, failed) = final_read_phase(shared, target, &keys_touched).await;
    (reads, failed, keys_touched.len() as u64)
}

async fn final_read_phase(shared: &Arc<Shared>, target: &Target, keys: &[u64]) -> (u64, u64) {
    let jobs: Arc<Mutex<Vec<(u64, SocketAddr)>>> = Arc::new(Mutex::new(
        keys.iter()
            .flat_map(|&key| target.nodes.iter().map(move |(_, addr)| (key, *addr)))
            .rev()
            .collect(),
    ));
    let seeds: Vec<SocketAddr> = target.nodes.iter().map(|(_, addr)| *addr).collect();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..FINAL_READERS {
        let shared = shared.clone();
        let jobs = jobs.clone();
        let seeds = seeds.clone();
        let done = done.clone();
        let failed = failed.clone();
        let n = target.n;
        readers.push(tokio::spawn(async move {
            let client = Client::new(seeds, shared.spec.load.timeout);
            let process = shared.next_process.fetch_add(1, Ordering::Relaxed);
            let mut worker = Worker::new(client, shared.clone(), process);
            loop {
                let job = jobs.lock().recover().pop();
                let Some((key, addr)) = job else { break };
                if let Outcome::Done(read) = worker.get(key, Some(n), Some(vec![addr]), true).await {
                    let items: HashSet<u64> = read.values.iter().flat_map(|value| cart_items(value)).collect();
                    shared.cart.lock().recover().finals.entry(key).or_insert(items);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for reader in readers {
        let _ = reader.await;
    }
    (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

pub(super) fn cart_figures(shared: &Shared) -> CartFigures {
    let book = shared.cart.lock().recover();
    let mut figures = CartFigures::default();
    for (key, added) in &book.added {
        figures.adds_acknowledged += added.len() as u64;
        let Some(final_items) = book.finals.get(key) else {
            continue;
        };
        let removed = book.checked_out.get(key);
        for item in added {
            let checked_out = removed.is_some_and(|removed| removed.contains(item));
            if !final_items.contains(item) && !checked_out {
                figures.adds_missing += 1;
                if figures.missing_examples.len() < 10 {
                    figures
                        .missing_examples
                        .push((shared.key_name(*key), format!("i{item}")));
                }
            }
        }
    }
    for (key, final_items) in &book.finals {
        figures.carts_judged += 1;
        if let Some(removed) = book.checked_out.get(key) {
            figures.deleted_items_returned += final_items.iter().filter(|item| removed.contains(item)).count() as u64;
        }
    }
    figures
}
