//! Peer messages on the wire: tagged 1–17 in the order of [`Message`]'s
//! variants; request ids as varint node and varint sequence; tree requests
//! and responses as length-prefixed [`crate::merkle`] encodings.

use super::client::{put_reply, put_request, read_reply, read_request};
use super::{put_optional_count, put_request_id, put_set, read_nested, read_request_id, read_set};
use crate::codec::{put_bytes, put_varint, DecodeError, Reader};
use crate::ids::{NodeId, PartitionId};
use crate::limits::{KEY_BYTES_MAX, NODES_MAX, PARTITIONS_MAX};
use crate::merkle;
use crate::protocol::Message;
use crate::ring::Ring;

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
        Message::TreeQuery {
            exchange,
            partition,
            request,
        } => {
            out.push(11);
            put_varint(out, *exchange);
            put_varint(out, u64::from(partition.0));
            put_bytes(out, &request.encode());
        }
        Message::TreeReply {
            exchange,
            partition,
            response,
        } => {
            out.push(12);
            put_varint(out, *exchange);
            put_varint(out, u64::from(partition.0));
            match response {
                None => out.push(0),
                Some(response) => {
                    out.push(1);
                    put_bytes(out, &response.encode());
                }
            }
        }
        Message::Repair { key, set, back } => {
            out.push(13);
            put_bytes(out, key);
            put_set(out, set);
            out.push(u8::from(*back));
        }
        Message::Reap { key, hash } => {
            out.push(14);
            put_bytes(out, key);
            out.extend_from_slice(&hash.to_le_bytes());
        }
        Message::Reaped { key } => {
            out.push(15);
            put_bytes(out, key);
        }
        Message::Gossip { ring, next, ready } => {
            out.push(16);
            put_ring(out, ring);
            match next {
                Some(next) => {
                    out.push(1);
                    put_ring(out, next);
                }
                None => out.push(0),
            }
            put_varint(out, ready.len() as u64);
            for node in ready {
                put_varint(out, u64::from(node.0));
            }
        }
        Message::Join => out.push(17),
    }
}

/// A ring as its epoch, Q and the owner of each partition.
fn put_ring(out: &mut Vec<u8>, ring: &Ring) {
    put_varint(out, ring.epoch());
    put_varint(out, u64::from(ring.partition_count()));
    for owner in ring.owners() {
        put_varint(out, u64::from(owner.0));
    }
}

fn read_ring(reader: &mut Reader<'_>) -> Result<Ring, DecodeError> {
    let epoch = reader.varint("ring epoch")?;
    let count = reader.varint_at_most(PARTITIONS_MAX as usize, "partition count")?;
    let mut owners = Vec::with_capacity(count);
    for _ in 0..count {
        owners.push(read_node(reader)?);
    }
    Ring::from_assignment(owners, epoch).map_err(|_| reader.error("ring"))
}

fn read_node(reader: &mut Reader<'_>) -> Result<NodeId, DecodeError> {
    Ok(NodeId(reader.varint_at_most(u32::MAX as usize, "node id")? as u32))
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
        11 => Message::TreeQuery {
            exchange: reader.varint("exchange")?,
            partition: read_partition(reader)?,
            request: read_nested(reader, "tree request", merkle::Request::decode)?,
        },
        12 => Message::TreeReply {
            exchange: reader.varint("exchange")?,
            partition: read_partition(reader)?,
            response: match reader.u8("response tag")? {
                0 => None,
                1 => Some(read_nested(reader, "tree response", merkle::Response::decode)?),
                _ => return Err(reader.error("response tag")),
            },
        },
        13 => Message::Repair {
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
            set: read_set(reader)?,
            back: match reader.u8("back")? {
                0 => false,
                1 => true,
                _ => return Err(reader.error("back")),
            },
        },
        14 => Message::Reap {
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
            hash: reader.u64_le("entry hash")?,
        },
        15 => Message::Reaped {
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
        },
        16 => {
            let ring = read_ring(reader)?;
            let next = match reader.u8("next flag")? {
                0 => None,
                1 => Some(read_ring(reader)?),
                _ => return Err(reader.error("next flag")),
            };
            let count = reader.varint_at_most(NODES_MAX, "ready count")?;
            let mut ready = Vec::with_capacity(count);
            for _ in 0..count {
                ready.push(read_node(reader)?);
            }
            Message::Gossip { ring, next, ready }
        }
        17 => Message::Join,
        _ => return Err(reader.error("unknown message tag")),
    })
}

fn read_partition(reader: &mut Reader<'_>) -> Result<PartitionId, DecodeError> {
    Ok(PartitionId(
        reader.varint_at_most(PARTITIONS_MAX as usize - 1, "partition")? as u32,
    ))
}
