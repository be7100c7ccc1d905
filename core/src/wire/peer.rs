//! Peer messages on the wire: tagged 1–10 in the order of [`Message`]'s
//! variants; request ids as varint node and varint sequence.

use super::client::{put_reply, put_request, read_reply, read_request};
use super::{put_optional_count, put_request_id, put_set, read_request_id, read_set};
use crate::codec::{put_bytes, DecodeError, Reader};
use crate::ids::NodeId;
use crate::limits::KEY_BYTES_MAX;
use crate::protocol::Message;

pub(super) fn put_message(out: &mut Vec<u8>, message: &Message) {
    match message {
        Message::Read { request, key } => {
            out.push(1);
            put_request_id(out, request);
            put_bytes(out, key);
        }
        Message::ReadReply { request, set } => {
            out.push(2);
            put_request_id(out, request);
            put_set(out, set);
        }
        Message::Write {
            request,
            key,
            set,
            hint,
        } => {
            out.push(3);
            put_request_id(out, request);
            put_bytes(out, key);
            put_set(out, set);
            put_optional_count(out, hint.map(|node| node.0 as usize));
        }
        Message::WriteAck { request } => {
            out.push(4);
            put_request_id(out, request);
        }
        Message::Forward { request, op } => {
            out.push(5);
            put_request_id(out, request);
            put_request(out, op);
        }
        Message::ForwardReply { request, reply } => {
            out.push(6);
            put_request_id(out, request);
            put_reply(out, reply);
        }
        Message::Handoff { key, set } => {
            out.push(7);
            put_bytes(out, key);
            put_set(out, set);
        }
        Message::HandoffAck { key } => {
            out.push(8);
            put_bytes(out, key);
        }
        Message::Ping => out.push(9),
        Message::Pong => out.push(10),
    }
}

pub(super) fn read_message(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(match reader.u8("message tag")? {
        1 => Message::Read {
            request: read_request_id(reader)?,
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
        },
        2 => Message::ReadReply {
            request: read_request_id(reader)?,
            set: read_set(reader)?,
        },
        3 => Message::Write {
            request: read_request_id(reader)?,
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
            set: read_set(reader)?,
            hint: match reader.u8("hint tag")? {
                0 => None,
                1 => Some(NodeId(reader.varint_at_most(u32::MAX as usize, "hint")? as u32)),
                _ => return Err(reader.error("hint tag")),
            },
        },
        4 => Message::WriteAck {
            request: read_request_id(reader)?,
        },
        5 => Message::Forward {
            request: read_request_id(reader)?,
            op: read_request(reader)?,
        },
        6 => Message::ForwardReply {
            request: read_request_id(reader)?,
            reply: read_reply(reader)?,
        },
        7 => Message::Handoff {
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
            set: read_set(reader)?,
        },
        8 => Message::HandoffAck {
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
        },
        9 => Message::Ping,
        10 => Message::Pong,
        _ => return Err(reader.error("unknown message tag")),
    })
}
