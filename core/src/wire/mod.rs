//! The wire format between clients and nodes and among nodes.
//!
//! A connection carries frames, back to back:
//!
//! ```text
//! u32 LE   length of what follows (version byte included), at most FRAME_BYTES_MAX
//! u8       wire version = 2
//! u8       frame tag
//! ...      the frame's fields
//! ```
//!
//! Fields use the node's codec: varints for integers and lengths, varint
//! length + bytes for keys and values, the storage encoding for sibling sets
//! (length-prefixed), and the clock encoding for contexts. Frames:
//!
//! | tag | frame | fields |
//! |---|---|---|
//! | 1 | `Request` | varint id, request (below) |
//! | 2 | `Response` | varint id, reply (below) |
//! | 3 | `Peer` | varint from-node, message (below) |
//! | 4 | `Admin` | varint id, the [`AdminQuery`] as JSON text (`"ring"`, `"stats"`) |
//! | 5 | `AdminReply` | varint id, the [`AdminAnswer`] as JSON text |
//!
//! A request is `1 key r?` (get) or `2 key context value? w?` (put; no value
//! deletes), where `x?` is a byte 0 (absent) or 1 followed by x. A reply is
//! `1 count values… context` (got), `2` (stored) or `3 error` (failed: `1
//! got needed` timeout, `2 text` bad request, `3 kind text` storage with
//! kind `1` failed, `2` damaged data, `3` too large; `4` shutting down, `5
//! text` unavailable). Peer
//! messages are tagged 1–10 in the order of [`Message`]'s variants, request
//! ids as varint node and varint sequence.
//!
//! Version 2 (this one) typed the admin frames and the error kinds; a
//! version-1 peer is refused with a [`FrameError::Version`].
//!
//! Decoding never panics: a frame that is malformed, oversized or from
//! another wire version is an error (the connection is closed); one not yet
//! whole is `Ok(None)` (read more bytes).

use thiserror::Error;

use crate::admin::{AdminAnswer, AdminQuery};
use crate::codec::{put_bytes, put_varint, DecodeError, Reader};
use crate::ids::NodeId;
use crate::limits::{FRAME_BYTES_MAX, KEY_BYTES_MAX, SIBLINGS_MAX, VALUE_BYTES_MAX};
use crate::protocol::{ClientError, ClientReply, ClientRequest, Message, RequestId, StoreError};
use crate::version::{decode_sibling_set, encode_sibling_set, put_clock, read_clock, SiblingSet};

/// The wire version this build speaks.
pub const WIRE_VERSION: u8 = 2;

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → node.
    Request {
        /// Chosen by the client; the response repeats it.
        id: u64,
        /// What the client asks.
        request: ClientRequest,
    },
    /// Node → client.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        reply: ClientReply,
    },
    /// Node → node.
    Peer {
        /// The sending node.
        from: NodeId,
        /// The protocol message.
        message: Message,
    },
    /// Operator or client → node: what the cluster looks like, or counters.
    Admin {
        /// Chosen by the asker; the answer repeats it.
        id: u64,
        /// The query.
        query: AdminQuery,
    },
    /// Node → operator or client.
    AdminReply {
        /// The query's id.
        id: u64,
        /// The answer.
        answer: AdminAnswer,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix is over [`FRAME_BYTES_MAX`] (or zero).
    #[error("frame of {len} bytes is over the limit of {FRAME_BYTES_MAX} (or empty)")]
    BadLength {
        /// The announced length.
        len: usize,
    },
    /// Another wire version.
    #[error("wire version {found} is not spoken here (this build speaks {WIRE_VERSION})")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// The frame's bytes do not decode.
    #[error("malformed frame: {0}")]
    Malformed(DecodeError),
}

impl From<DecodeError> for FrameError {
    fn from(error: DecodeError) -> Self {
        FrameError::Malformed(error)
    }
}

/// Appends one whole frame (length prefix included) to `out`.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    out.push(WIRE_VERSION);
    match frame {
        Frame::Request { id, request } => {
            out.push(1);
            put_varint(out, *id);
            put_request(out, request);
        }
        Frame::Response { id, reply } => {
            out.push(2);
            put_varint(out, *id);
            put_reply(out, reply);
        }
        Frame::Peer { from, message } => {
            out.push(3);
            put_varint(out, u64::from(from.0));
            put_message(out, message);
        }
        Frame::Admin { id, query } => {
            out.push(4);
            put_varint(out, *id);
            put_json(out, query);
        }
        Frame::AdminReply { id, answer } => {
            out.push(5);
            put_varint(out, *id);
            put_json(out, answer);
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Decodes the first frame of `bytes`: `Ok(Some((frame, bytes used)))`,
/// `Ok(None)` when the frame is not all there yet.
///
/// # Errors
/// A bad length, another wire version, or a malformed frame.
pub fn decode_frame(bytes: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if bytes.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if len == 0 || len > FRAME_BYTES_MAX {
        return Err(FrameError::BadLength { len });
    }
    if bytes.len() < 4 + len {
        return Ok(None);
    }
    let body = &bytes[4..4 + len];
    if body[0] != WIRE_VERSION {
        return Err(FrameError::Version { found: body[0] });
    }
    let mut reader = Reader::new(&body[1..]);
    let frame = match reader.u8("frame tag")? {
        1 => Frame::Request {
            id: reader.varint("request id")?,
            request: read_request(&mut reader)?,
        },
        2 => Frame::Response {
            id: reader.varint("request id")?,
            reply: read_reply(&mut reader)?,
        },
        3 => Frame::Peer {
            from: NodeId(reader.varint_at_most(u32::MAX as usize, "node id")? as u32),
            message: read_message(&mut reader)?,
        },
        4 => Frame::Admin {
            id: reader.varint("admin id")?,
            query: read_json(&mut reader, "admin query")?,
        },
        5 => Frame::AdminReply {
            id: reader.varint("admin id")?,
            answer: read_json(&mut reader, "admin answer")?,
        },
        _ => return Err(FrameError::Malformed(reader.error("unknown frame tag"))),
    };
    reader.finish()?;
    Ok(Some((frame, 4 + len)))
}

fn put_optional_count(out: &mut Vec<u8>, value: Option<usize>) {
    match value {
        None => out.push(0),
        Some(count) => {
            out.push(1);
            put_varint(out, count as u64);
        }
    }
}

fn read_optional_count(reader: &mut Reader<'_>, what: &'static str) -> Result<Option<usize>, DecodeError> {
    match reader.u8(what)? {
        0 => Ok(None),
        1 => Ok(Some(reader.varint_at_most(u16::MAX as usize, what)?)),
        _ => Err(reader.error(what)),
    }
}

fn put_set(out: &mut Vec<u8>, set: &SiblingSet) {
    put_bytes(out, &encode_sibling_set(set));
}

fn read_set(reader: &mut Reader<'_>) -> Result<SiblingSet, DecodeError> {
    let start = reader.offset();
    let bytes = reader.bytes(FRAME_BYTES_MAX, "sibling set")?;
    decode_sibling_set(bytes).map_err(|error| DecodeError {
        offset: start + error.offset,
        what: error.what,
    })
}

fn put_request_id(out: &mut Vec<u8>, id: &RequestId) {
    put_varint(out, u64::from(id.node.0));
    put_varint(out, id.sequence);
}

fn read_request_id(reader: &mut Reader<'_>) -> Result<RequestId, DecodeError> {
    Ok(RequestId {
        node: NodeId(reader.varint_at_most(u32::MAX as usize, "node id")? as u32),
        sequence: reader.varint("request sequence")?,
    })
}

fn put_request(out: &mut Vec<u8>, request: &ClientRequest) {
    match request {
        ClientRequest::Get { key, r } => {
            out.push(1);
            put_bytes(out, key);
            put_optional_count(out, *r);
        }
        ClientRequest::Put { key, context, value, w } => {
            out.push(2);
            put_bytes(out, key);
            put_clock(out, context);
            match value {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    put_bytes(out, value);
                }
            }
            put_optional_count(out, *w);
        }
    }
}

fn read_request(reader: &mut Reader<'_>) -> Result<ClientRequest, DecodeError> {
    match reader.u8("request tag")? {
        1 => Ok(ClientRequest::Get {
            key: reader.bytes(KEY_BYTES_MAX, "key")?.to_vec(),
            r: read_optional_count(reader, "r")?,
        }),
        2 => {
            let key = reader.bytes(KEY_BYTES_MAX, "key")?.to_vec();
            let context = read_clock(reader)?;
            let value = match reader.u8("value tag")? {
                0 => None,
                1 => Some(reader.bytes(VALUE_BYTES_MAX, "value")?.to_vec()),
                _ => return Err(reader.error("value tag")),
            };
            Ok(ClientRequest::Put {
                key,
                context,
                value,
                w: read_optional_count(reader, "w")?,
            })
        }
        _ => Err(reader.error("unknown request tag")),
    }
}

fn put_reply(out: &mut Vec<u8>, reply: &ClientReply) {
    match reply {
        ClientReply::Got { values, context } => {
            out.push(1);
            put_varint(out, values.len() as u64);
            for value in values {
                put_bytes(out, value);
            }
            put_clock(out, context);
        }
        ClientReply::Stored => out.push(2),
        ClientReply::Failed(error) => {
            out.push(3);
            match error {
                ClientError::Timeout { got, needed } => {
                    out.push(1);
                    put_varint(out, *got as u64);
                    put_varint(out, *needed as u64);
                }
                ClientError::BadRequest(text) => {
                    out.push(2);
                    put_bytes(out, text.as_bytes());
                }
                ClientError::Storage(failure) => {
                    out.push(3);
                    let (kind, text) = match failure {
                        StoreError::Failed(text) => (1, text),
                        StoreError::Corrupt(text) => (2, text),
                        StoreError::TooLarge(text) => (3, text),
                    };
                    out.push(kind);
                    put_bytes(out, text.as_bytes());
                }
                ClientError::ShuttingDown => out.push(4),
                ClientError::Unavailable(text) => {
                    out.push(5);
                    put_bytes(out, text.as_bytes());
                }
            }
        }
    }
}

fn read_text(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    let bytes = reader.bytes(64 * 1024, "text")?;
    String::from_utf8(bytes.to_vec()).map_err(|_| reader.error("text is not UTF-8"))
}

/// An admin message as length-prefixed JSON text (serialising these plain
/// structs cannot fail; an empty text would be refused by the reader).
fn put_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    let text = serde_json::to_vec(value).unwrap_or_default();
    put_bytes(out, &text);
}

fn read_json<T: serde::de::DeserializeOwned>(reader: &mut Reader<'_>, what: &'static str) -> Result<T, DecodeError> {
    let bytes = reader.bytes(FRAME_BYTES_MAX, what)?;
    serde_json::from_slice(bytes).map_err(|_| reader.error(what))
}

fn read_reply(reader: &mut Reader<'_>) -> Result<ClientReply, DecodeError> {
    match reader.u8("reply tag")? {
        1 => {
            let count = reader.varint_at_most(SIBLINGS_MAX, "value count")?;
            let mut values = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                values.push(reader.bytes(VALUE_BYTES_MAX, "value")?.to_vec());
            }
            Ok(ClientReply::Got {
                values,
                context: read_clock(reader)?,
            })
        }
        2 => Ok(ClientReply::Stored),
        3 => {
            let error = match reader.u8("error tag")? {
                1 => ClientError::Timeout {
                    got: reader.varint_at_most(u16::MAX as usize, "got")?,
                    needed: reader.varint_at_most(u16::MAX as usize, "needed")?,
                },
                2 => ClientError::BadRequest(read_text(reader)?),
                3 => ClientError::Storage(match reader.u8("storage error kind")? {
                    1 => StoreError::Failed(read_text(reader)?),
                    2 => StoreError::Corrupt(read_text(reader)?),
                    3 => StoreError::TooLarge(read_text(reader)?),
                    _ => return Err(reader.error("unknown storage error kind")),
                }),
                4 => ClientError::ShuttingDown,
                5 => ClientError::Unavailable(read_text(reader)?),
                _ => return Err(reader.error("unknown error tag")),
            };
            Ok(ClientReply::Failed(error))
        }
        _ => Err(reader.error("unknown reply tag")),
    }
}

fn put_message(out: &mut Vec<u8>, message: &Message) {
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

fn read_message(reader: &mut Reader<'_>) -> Result<Message, DecodeError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Actor, VectorClock, Versioning};
    use proptest::prelude::*;

    fn sample_set() -> SiblingSet {
        let actor = Actor {
            node: NodeId(3),
            incarnation: 77,
        };
        let mut set = SiblingSet::new();
        set.put(
            actor,
            &VectorClock::new(),
            Some(b"one".to_vec()),
            5,
            Versioning::Dvv,
            10,
        );
        set.put(actor, &VectorClock::new(), None, 6, Versioning::Dvv, 10);
        set
    }

    fn samples() -> Vec<Frame> {
        let request = RequestId {
            node: NodeId(2),
            sequence: 99,
        };
        let set = sample_set();
        let context = set.context();
        let put = ClientRequest::Put {
            key: b"cart:1".to_vec(),
            context: context.clone(),
            value: Some(vec![0, 1, 2, 255]),
            w: Some(3),
        };
        let messages = vec![
            Message::Read {
                request,
                key: b"k".to_vec(),
            },
            Message::ReadReply {
                request,
                set: set.clone(),
            },
            Message::Write {
                request,
                key: b"k".to_vec(),
                set: set.clone(),
                hint: Some(NodeId(4)),
            },
            Message::Write {
                request,
                key: Vec::new(),
                set: SiblingSet::new(),
                hint: None,
            },
            Message::WriteAck { request },
            Message::Forward {
                request,
                op: put.clone(),
            },
            Message::ForwardReply {
                request,
                reply: ClientReply::Failed(ClientError::Timeout { got: 1, needed: 2 }),
            },
            Message::Handoff {
                key: b"k".to_vec(),
                set,
            },
            Message::HandoffAck { key: b"k".to_vec() },
            Message::Ping,
            Message::Pong,
        ];
        let mut frames: Vec<Frame> = messages
            .into_iter()
            .map(|message| Frame::Peer {
                from: NodeId(1),
                message,
            })
            .collect();
        frames.push(Frame::Request {
            id: 1,
            request: ClientRequest::Get {
                key: b"k".to_vec(),
                r: None,
            },
        });
        frames.push(Frame::Request { id: 2, request: put });
        frames.push(Frame::Admin {
            id: 7,
            query: AdminQuery::Ring,
        });
        frames.push(Frame::Admin {
            id: 8,
            query: AdminQuery::Stats,
        });
        frames.push(Frame::AdminReply {
            id: 8,
            answer: AdminAnswer::Stats(crate::admin::StatsReport {
                node: NodeId(2),
                keys: 5,
                ..Default::default()
            }),
        });
        frames.push(Frame::Request {
            id: 3,
            request: ClientRequest::Put {
                key: b"k".to_vec(),
                context: context.clone(),
                value: None,
                w: None,
            },
        });
        for reply in [
            ClientReply::Got {
                values: vec![b"a".to_vec(), Vec::new()],
                context,
            },
            ClientReply::Stored,
            ClientReply::Failed(ClientError::BadRequest("r = 9".into())),
            ClientReply::Failed(ClientError::Storage(StoreError::Failed("disk".into()))),
            ClientReply::Failed(ClientError::Storage(StoreError::Corrupt("crc".into()))),
            ClientReply::Failed(ClientError::Storage(StoreError::TooLarge("big".into()))),
            ClientReply::Failed(ClientError::ShuttingDown),
            ClientReply::Failed(ClientError::Unavailable("queue full".into())),
        ] {
            frames.push(Frame::Response { id: u64::MAX, reply });
        }
        frames
    }

    #[test]
    fn every_frame_round_trips_and_back_to_back_frames_split() {
        let frames = samples();
        let mut wire = Vec::new();
        for frame in &frames {
            encode_frame(frame, &mut wire);
        }
        let mut offset = 0;
        for frame in &frames {
            let (decoded, used) = decode_frame(&wire[offset..]).unwrap().unwrap();
            assert_eq!(&decoded, frame);
            offset += used;
        }
        assert_eq!(offset, wire.len());
    }

    #[test]
    fn half_frames_ask_for_more_bytes() {
        for frame in samples() {
            let mut wire = Vec::new();
            encode_frame(&frame, &mut wire);
            for cut in 0..wire.len() {
                assert_eq!(decode_frame(&wire[..cut]), Ok(None), "{frame:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn oversized_and_foreign_frames_are_errors() {
        let oversized = ((FRAME_BYTES_MAX + 1) as u32).to_le_bytes();
        assert!(matches!(decode_frame(&oversized), Err(FrameError::BadLength { .. })));
        assert!(matches!(
            decode_frame(&[0, 0, 0, 0]),
            Err(FrameError::BadLength { len: 0 })
        ));
        assert_eq!(decode_frame(&[2, 0, 0, 0, 9, 1]), Err(FrameError::Version { found: 9 }));
        assert!(matches!(
            decode_frame(&[2, 0, 0, 0, WIRE_VERSION, 77]),
            Err(FrameError::Malformed(_))
        ));
        // A version-1 peer (before the admin frames were typed) is told so.
        assert_eq!(decode_frame(&[2, 0, 0, 0, 1, 4]), Err(FrameError::Version { found: 1 }));
        // An admin query that is not one of ours is malformed, not a panic.
        let mut unknown = vec![4u8, 7];
        put_bytes(&mut unknown, b"\"shutdown\"");
        let mut frame = ((unknown.len() + 1) as u32).to_le_bytes().to_vec();
        frame.push(WIRE_VERSION);
        frame.extend_from_slice(&unknown);
        assert!(matches!(decode_frame(&frame), Err(FrameError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn flipped_bytes_never_panic(index: usize, flip in 1u8..=255) {
            let mut wire = Vec::new();
            for frame in samples() {
                encode_frame(&frame, &mut wire);
            }
            let index = index % wire.len();
            wire[index] ^= flip;
            let mut offset = 0;
            while offset < wire.len() {
                match decode_frame(&wire[offset..]) {
                    Ok(Some((_, used))) => offset += used,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
