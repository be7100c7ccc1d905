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
//! | 6 | `PeerHello` | varint from-node, 32-byte nonce |
//! | 7 | `PeerChallenge` | 32-byte nonce, 32-byte proof |
//! | 8 | `PeerProof` | 32-byte proof |
//!
//! Frames 6–8 are the peer handshake (see `dynamo-node`'s `server/auth.rs`):
//! a node opening a peer connection says who it is with a nonce; the
//! accepting node answers with its own nonce and an HMAC over both proving
//! it holds the cluster secret; the opener answers with its HMAC. Only then
//! does the accepting node take `Peer` frames on that connection.
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

mod client;
mod peer;

use client::{put_reply, put_request, read_reply, read_request};
use peer::{put_message, read_message};

use crate::admin::{AdminAnswer, AdminQuery};
use crate::codec::{put_bytes, put_varint, DecodeError, Reader};
use crate::ids::{NodeId, PartitionId};
use crate::limits::{FRAME_BYTES_MAX, PARTITIONS_MAX};
use crate::protocol::{ClientReply, ClientRequest, Message, RequestId};
use crate::version::{decode_sibling_set, encode_sibling_set, SiblingSet};

/// Bytes of a handshake nonce and of an HMAC-SHA256 proof.
pub const NONCE_BYTES: usize = 32;

/// The wire version this build speaks.
pub const WIRE_VERSION: u8 = 4;

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
    /// Opening node → accepting node: who I am, and a fresh nonce.
    PeerHello {
        /// The opening node.
        from: NodeId,
        /// Its nonce.
        nonce: [u8; NONCE_BYTES],
    },
    /// Accepting node → opening node: my nonce, and proof I hold the secret.
    PeerChallenge {
        /// The accepting node's nonce.
        nonce: [u8; NONCE_BYTES],
        /// HMAC of both nonces and both node ids under the cluster secret.
        proof: [u8; NONCE_BYTES],
    },
    /// Opening node → accepting node: proof I hold the secret.
    PeerProof {
        /// HMAC of both nonces and both node ids under the cluster secret.
        proof: [u8; NONCE_BYTES],
    },
    /// A partition's files between two nodes (a membership change), on a
    /// peer connection of its own.
    Transfer(Transfer),
}

/// The steps of a partition transfer: the gaining node asks, the source
/// answers with each file of a consistent snapshot of the partition (from
/// where the gaining node's copy of it ends, when it has a prefix of it:
/// transfers resume), each followed by the SHA-256 of the whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// Gaining node → source: send `partition`'s files; I hold these many
    /// bytes of these files already.
    Ask {
        /// The partition.
        partition: PartitionId,
        /// File name and bytes held, per file already (partly) here.
        have: Vec<(String, u64)>,
    },
    /// Source → gaining node: bytes `from..len` of file `name` follow.
    File {
        /// The file's name in the partition's directory.
        name: String,
        /// Its length in the snapshot.
        len: u64,
        /// Where the bytes sent start.
        from: u64,
    },
    /// Source → gaining node: the current file's next bytes.
    Chunk(Vec<u8>),
    /// Source → gaining node: the current file is complete; the SHA-256 of
    /// its bytes `0..len`.
    FileEnd {
        /// The checksum.
        sha256: [u8; 32],
    },
    /// Source → gaining node: every file of the snapshot was sent.
    Done,
    /// Source → gaining node: the transfer cannot go on, and why.
    Failed(String),
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
        Frame::PeerHello { from, nonce } => {
            out.push(6);
            put_varint(out, u64::from(from.0));
            out.extend_from_slice(nonce);
        }
        Frame::PeerChallenge { nonce, proof } => {
            out.push(7);
            out.extend_from_slice(nonce);
            out.extend_from_slice(proof);
        }
        Frame::PeerProof { proof } => {
            out.push(8);
            out.extend_from_slice(proof);
        }
        Frame::Transfer(transfer) => {
            out.push(9);
            match transfer {
                Transfer::Ask { partition, have } => {
                    out.push(1);
                    put_varint(out, u64::from(partition.0));
                    put_varint(out, have.len() as u64);
                    for (name, len) in have {
                        put_bytes(out, name.as_bytes());
                        put_varint(out, *len);
                    }
                }
                Transfer::File { name, len, from } => {
                    out.push(2);
                    put_bytes(out, name.as_bytes());
                    put_varint(out, *len);
                    put_varint(out, *from);
                }
                Transfer::Chunk(bytes) => {
                    out.push(3);
                    put_bytes(out, bytes);
                }
                Transfer::FileEnd { sha256 } => {
                    out.push(4);
                    out.extend_from_slice(sha256);
                }
                Transfer::Done => out.push(5),
                Transfer::Failed(reason) => {
                    out.push(6);
                    put_bytes(out, reason.as_bytes());
                }
            }
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
        6 => Frame::PeerHello {
            from: NodeId(reader.varint_at_most(u32::MAX as usize, "node id")? as u32),
            nonce: read_array(&mut reader, "nonce")?,
        },
        7 => Frame::PeerChallenge {
            nonce: read_array(&mut reader, "nonce")?,
            proof: read_array(&mut reader, "proof")?,
        },
        8 => Frame::PeerProof {
            proof: read_array(&mut reader, "proof")?,
        },
        9 => Frame::Transfer(read_transfer(&mut reader)?),
        _ => return Err(FrameError::Malformed(reader.error("unknown frame tag"))),
    };
    reader.finish()?;
    Ok(Some((frame, 4 + len)))
}

/// Names of files in a transfer: at most this many bytes.
const TRANSFER_NAME_BYTES_MAX: usize = 255;
/// Files one transfer may list.
const TRANSFER_FILES_MAX: usize = 1 << 20;

fn read_name(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    let bytes = reader.bytes(TRANSFER_NAME_BYTES_MAX, "file name")?;
    let name = std::str::from_utf8(bytes).map_err(|_| reader.error("file name"))?;
    // A bare file name: nothing that could leave the partition directory.
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(reader.error("file name"));
    }
    Ok(name.to_string())
}

fn read_transfer(reader: &mut Reader<'_>) -> Result<Transfer, DecodeError> {
    Ok(match reader.u8("transfer tag")? {
        1 => {
            let partition = PartitionId(reader.varint_at_most(PARTITIONS_MAX as usize, "partition")? as u32);
            let count = reader.varint_at_most(TRANSFER_FILES_MAX, "file count")?;
            let mut have = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                have.push((read_name(reader)?, reader.varint("file length")?));
            }
            Transfer::Ask { partition, have }
        }
        2 => Transfer::File {
            name: read_name(reader)?,
            len: reader.varint("file length")?,
            from: reader.varint("file offset")?,
        },
        3 => Transfer::Chunk(reader.bytes(FRAME_BYTES_MAX, "chunk")?.to_vec()),
        4 => {
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(reader.take(32, "sha256")?);
            Transfer::FileEnd { sha256 }
        }
        5 => Transfer::Done,
        6 => Transfer::Failed(String::from_utf8_lossy(reader.bytes(FRAME_BYTES_MAX, "reason")?).into_owned()),
        _ => return Err(reader.error("unknown transfer tag")),
    })
}

pub(super) fn put_optional_count(out: &mut Vec<u8>, value: Option<usize>) {
    match value {
        None => out.push(0),
        Some(count) => {
            out.push(1);
            put_varint(out, count as u64);
        }
    }
}

pub(super) fn read_optional_count(reader: &mut Reader<'_>, what: &'static str) -> Result<Option<usize>, DecodeError> {
    match reader.u8(what)? {
        0 => Ok(None),
        1 => Ok(Some(reader.varint_at_most(u16::MAX as usize, what)?)),
        _ => Err(reader.error(what)),
    }
}

pub(super) fn put_set(out: &mut Vec<u8>, set: &SiblingSet) {
    put_bytes(out, &encode_sibling_set(set));
}

pub(super) fn read_set(reader: &mut Reader<'_>) -> Result<SiblingSet, DecodeError> {
    read_nested(reader, "sibling set", decode_sibling_set)
}

/// A length-prefixed encoding decoded by `decode`, its errors placed at
/// their offset in the frame.
pub(super) fn read_nested<T>(
    reader: &mut Reader<'_>,
    what: &'static str,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let start = reader.offset();
    let bytes = reader.bytes(FRAME_BYTES_MAX, what)?;
    decode(bytes).map_err(|error| DecodeError {
        offset: start + error.offset,
        what: error.what,
    })
}

pub(super) fn put_request_id(out: &mut Vec<u8>, id: &RequestId) {
    put_varint(out, u64::from(id.node.0));
    put_varint(out, id.sequence);
}

pub(super) fn read_request_id(reader: &mut Reader<'_>) -> Result<RequestId, DecodeError> {
    Ok(RequestId {
        node: NodeId(reader.varint_at_most(u32::MAX as usize, "node id")? as u32),
        sequence: reader.varint("request sequence")?,
    })
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

fn read_array(reader: &mut Reader<'_>, what: &'static str) -> Result<[u8; NONCE_BYTES], DecodeError> {
    let mut array = [0u8; NONCE_BYTES];
    array.copy_from_slice(reader.take(NONCE_BYTES, what)?);
    Ok(array)
}

#[cfg(test)]
mod tests;
