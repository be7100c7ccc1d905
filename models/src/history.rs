//! The model's history: invocations and completions in the terms of
//! `shared/HISTORY.md`, with the causality it defines (a put directly
//! supersedes every value its context covered; causally precedes is the
//! transitive closure).

use std::collections::BTreeSet;
use std::sync::Arc;

/// What an operation did, once complete.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A get returned these values.
    Got(Vec<String>),
    /// A put was acknowledged (`ok`).
    Stored,
    /// The request failed or timed out (`info`: it may have taken effect).
    Indeterminate,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The client (process).
    pub client: usize,
    /// The key.
    pub key: String,
    /// For a put: the value it writes.
    pub value: Option<String>,
    /// For a put: the values its context covered.
    pub context: Vec<String>,
    /// Step at which it was invoked (history position).
    pub invoked: usize,
    /// Step at which it completed, with its outcome.
    pub completed: Option<(usize, Outcome)>,
}

/// The recorded operations, in invocation order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Every operation. Shared: the model clones the history into every
    /// state it reaches, and a completed operation never changes again, so
    /// a clone copies pointers, not strings.
    pub operations: Vec<Arc<Operation>>,
    /// Events so far (invocations and completions).
    pub events: usize,
}

impl History {
    /// A history that starts with one acknowledged put per `(key, value)`,
    /// by [`crate::settings::PRELOAD_CLIENT`], before any client's event.
    pub fn preloaded(values: impl IntoIterator<Item = (String, String)>) -> History {
        let operations: Vec<Arc<Operation>> = values
            .into_iter()
            .map(|(key, value)| {
                Arc::new(Operation {
                    client: crate::settings::PRELOAD_CLIENT,
                    key,
                    value: Some(value),
                    context: Vec::new(),
                    invoked: 0,
                    completed: Some((0, Outcome::Stored)),
                })
            })
            .collect();
        let events = usize::from(!operations.is_empty());
        History { operations, events }
    }

    /// The put that wrote `value`.
    pub fn put_of(&self, value: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .map(|op| &**op)
            .find(|op| op.value.as_deref() == Some(value))
    }

    /// Every value that `value` causally follows.
    pub fn ancestors(&self, value: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = self.put_of(value).map(|put| put.context.clone()).unwrap_or_default();
        while let Some(next) = todo.pop() {
            if seen.insert(next.clone()) {
                if let Some(put) = self.put_of(&next) {
                    todo.extend(put.context.iter().cloned());
                }
            }
        }
        seen
    }

    /// Invariant 2, sibling-antichain: no get returned a value beside one of
    /// its causal ancestors.
    pub fn siblings_are_concurrent(&self) -> bool {
        self.gets().all(|(_, values)| {
            values.iter().all(|value| {
                let ancestors = self.ancestors(value);
                values.iter().all(|other| !ancestors.contains(other))
            })
        })
    }

    /// Invariant 1, phantom: every returned value was written by a put
    /// invoked before the get completed, to the same key.
    pub fn no_phantom(&self) -> bool {
        self.gets().all(|(get, values)| {
            let completed = get.completed.as_ref().map_or(usize::MAX, |(at, _)| *at);
            values.iter().all(|value| {
                // (Every failure in the model is a timeout, which may have
                // taken effect; no put definitely failed.)
                self.put_of(value)
                    .is_some_and(|put| put.invoked < completed && put.key == get.key)
            })
        })
    }

    /// Invariant 3, stale-read (strict mode): a get invoked after a put was
    /// acknowledged returns that put's value or a descendant of it.
    pub fn reads_see_acknowledged_writes(&self) -> bool {
        self.gets().all(|(get, values)| {
            self.operations.iter().all(|put| {
                let acknowledged_before = matches!(&put.completed, Some((at, Outcome::Stored)) if *at < get.invoked);
                if !acknowledged_before || put.key != get.key {
                    return true;
                }
                let Some(value) = &put.value else { return true };
                values.contains(value) || values.iter().any(|returned| self.ancestors(returned).contains(value))
            })
        })
    }

    /// Reads never go back in real time across clients: a get invoked after
    /// *another client's* get on the key completed returns each value that
    /// one returned, or a descendant of it. A linearizable register would;
    /// Dynamo's quorums (even with R + W > N) do not promise it, and the
    /// model shows why. (One client going back is the monotonic-reads
    /// session guarantee, measured by the checker, not judged.)
    pub fn reads_never_go_back(&self) -> bool {
        self.gets().all(|(later, later_values)| {
            self.gets().all(|(earlier, earlier_values)| {
                let before = earlier.completed.as_ref().is_some_and(|(at, _)| *at < later.invoked);
                !before
                    || earlier.client == later.client
                    || earlier.key != later.key
                    || earlier_values.iter().all(|value| {
                        later_values.contains(value)
                            || later_values.iter().any(|newer| self.ancestors(newer).contains(value))
                    })
            })
        })
    }

    /// Some get returned two or more siblings.
    pub fn siblings_appeared(&self) -> bool {
        self.gets().any(|(_, values)| values.len() >= 2)
    }

    /// Some get returned a value another client wrote.
    pub fn read_another_clients_write(&self) -> bool {
        self.gets().any(|(get, values)| {
            values
                .iter()
                .any(|value| self.put_of(value).is_some_and(|put| put.client != get.client))
        })
    }

    /// Values of acknowledged puts.
    pub fn acknowledged(&self) -> impl Iterator<Item = &str> {
        self.operations
            .iter()
            .filter_map(|op| match (&op.value, &op.completed) {
                (Some(value), Some((_, Outcome::Stored))) => Some(value.as_str()),
                _ => None,
            })
    }

    /// The history as `shared/HISTORY.md` JSON Lines, for the checker and
    /// any other tool that reads that format: one `invoke` and (once
    /// complete) one `ok` or `info` per operation, `time_ns` the event's
    /// position, process ids the clients' actor ids (the preloaded values'
    /// writer gets the next free one). Then, after every other event, one
    /// `final` get per `(key, values)` of `finals`.
    pub fn to_jsonl(&self, finals: &[(String, Vec<String>)]) -> String {
        use serde_json::json;
        let preload_process = self
            .operations
            .iter()
            .map(|op| op.client)
            .filter(|&client| client != crate::settings::PRELOAD_CLIENT)
            .max()
            .map_or(0, |client| client + 1);
        let process = |op: &Operation| {
            if op.client == crate::settings::PRELOAD_CLIENT {
                preload_process
            } else {
                op.client
            }
        };
        // (position, order within it, line)
        let mut lines: Vec<(usize, usize, serde_json::Value)> = Vec::new();
        for (id, op) in self.operations.iter().enumerate() {
            let f = if op.value.is_some() { "put" } else { "get" };
            let mut invoke = json!({
                "type": "invoke", "process": process(op), "op": id, "f": f,
                "key": op.key, "time_ns": op.invoked,
            });
            if let Some(value) = &op.value {
                invoke["value"] = json!(value);
                invoke["context"] = json!(op.context);
            }
            lines.push((op.invoked, 0, invoke));
            if let Some((at, outcome)) = &op.completed {
                let mut done = json!({"process": process(op), "op": id, "f": f, "time_ns": at});
                match outcome {
                    Outcome::Got(values) => {
                        done["type"] = json!("ok");
                        done["values"] = json!(values);
                    }
                    Outcome::Stored => done["type"] = json!("ok"),
                    Outcome::Indeterminate => {
                        done["type"] = json!("info");
                        done["error"] = json!("the request failed or timed out");
                    }
                }
                lines.push((*at, 1, done));
            }
        }
        lines.sort_by_key(|(at, order, _)| (*at, *order));
        let mut text = String::new();
        for (_, _, line) in &lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        for (offset, (key, values)) in finals.iter().enumerate() {
            // A process of its own for each final read, after every client's.
            let process = preload_process + 1 + offset;
            let id = self.operations.len() + offset;
            let at = self.events + 2 * offset;
            let invoke = json!({
                "type": "invoke", "process": process, "op": id, "f": "get",
                "key": key, "final": true, "time_ns": at,
            });
            let done = json!({
                "type": "ok", "process": process, "op": id, "f": "get",
                "values": values, "time_ns": at + 1,
            });
            text.push_str(&format!("{invoke}\n{done}\n"));
        }
        text
    }

    fn gets(&self) -> impl Iterator<Item = (&Operation, &Vec<String>)> {
        self.operations
            .iter()
            .map(|op| &**op)
            .filter_map(|op| match &op.completed {
                Some((_, Outcome::Got(values))) => Some((op, values)),
                _ => None,
            })
    }
}
