//! Counterexample steps in words: who sent what to whom, and what the
//! client saw, with keys and values as text and versions as
//! `value dot past` (the version's dot and the causal past it carries).

use dynamo_core::protocol::{ClientReply, ClientRequest, Message};
use dynamo_core::version::SiblingSet;
use stateright::actor::{ActorModelAction, Id};

use crate::model::Msg;
use crate::settings::ModelSettings;
use dynamo_core::protocol::Timer;

fn text(bytes: &[u8]) -> String {
    dynamo_core::codec::printable(bytes, false, usize::MAX)
}

fn actor(settings: &ModelSettings, id: Id) -> String {
    let index = usize::from(id);
    if index < settings.servers {
        format!("s{index}")
    } else {
        format!("client {index}")
    }
}

fn set(set: &SiblingSet) -> String {
    let versions: Vec<String> = set
        .versions()
        .iter()
        .map(|version| {
            let value = version.value.as_deref().map_or_else(|| "tombstone".to_string(), text);
            format!("{value} {} {}", version.dot, version.past)
        })
        .collect();
    format!("[{}]", versions.join(", "))
}

fn request(request: &ClientRequest) -> String {
    match request {
        ClientRequest::Get { key, r } => {
            format!(
                "get {}{}",
                text(key),
                r.map(|r| format!(" (R={r})")).unwrap_or_default()
            )
        }
        ClientRequest::Put {
            key, context, value, ..
        } => match value {
            Some(value) => format!("put {} = {} with context {context}", text(key), text(value)),
            None => format!("delete {} with context {context}", text(key)),
        },
    }
}

fn reply(reply: &ClientReply) -> String {
    match reply {
        ClientReply::Got { values, context } => {
            let values: Vec<String> = values.iter().map(|value| text(value)).collect();
            format!("got [{}], context {context}", values.join(", "))
        }
        ClientReply::Stored => "stored".to_string(),
        ClientReply::Failed(error) => format!("failed: {error}"),
    }
}

fn message(message: &Message) -> String {
    match message {
        Message::Read { key, .. } => format!("read {}", text(key)),
        Message::ReadReply { set: held, .. } => format!("read reply {}", set(held)),
        Message::Write {
            key, set: held, hint, ..
        } => format!(
            "write {} {}{}",
            text(key),
            set(held),
            hint.map(|owner| format!(" (hinted for s{})", owner.0))
                .unwrap_or_default()
        ),
        Message::WriteAck { .. } => "write ack".to_string(),
        Message::Forward { op, .. } => format!("forward: {}", request(op)),
        Message::ForwardReply { reply: answer, .. } => format!("forwarded reply: {}", reply(answer)),
        Message::Handoff { key, set: held } => format!("hand off {} {}", text(key), set(held)),
        Message::HandoffAck { key } => format!("hand-off ack {}", text(key)),
        other => format!("{other:?}"),
    }
}

/// One step of a counterexample, in words.
pub fn describe(settings: &ModelSettings, action: &ActorModelAction<Msg, Timer, ()>) -> String {
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            let what = match msg {
                Msg::Request { request: asked, .. } => request(asked),
                Msg::Reply { reply: answer, .. } => reply(answer),
                Msg::Peer(peer) => message(peer),
            };
            format!("{} → {}: {what}", actor(settings, *src), actor(settings, *dst))
        }
        ActorModelAction::Drop(envelope) => format!(
            "the network drops {} → {}",
            actor(settings, envelope.src),
            actor(settings, envelope.dst)
        ),
        ActorModelAction::Timeout(id, timer) => format!("{}: timer {timer:?} fires", actor(settings, *id)),
        ActorModelAction::Crash(id) => format!("{} crashes", actor(settings, *id)),
        ActorModelAction::Recover(id) => format!("{} restarts from what it persisted", actor(settings, *id)),
        ActorModelAction::SelectRandom { actor: id, key, .. } => {
            format!("{} picks {key} at random", actor(settings, *id))
        }
    }
}
