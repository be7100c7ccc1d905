//! Client requests and replies on the wire (the layout is in the parent
//! module's table).

use super::{put_optional_count, read_optional_count};
use crate::codec::{put_bytes, put_varint, DecodeError, Reader};
use crate::limits::{KEY_BYTES_MAX, SIBLINGS_MAX, VALUE_BYTES_MAX};
use crate::protocol::{ClientError, ClientReply, ClientRequest, StoreError};
use crate::version::{put_clock, read_clock};

pub(super) fn put_request(out: &mut Vec<u8>, request: &ClientRequest) {
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

pub(super) fn read_request(reader: &mut Reader<'_>) -> Result<ClientRequest, DecodeError> {
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

pub(super) fn put_reply(out: &mut Vec<u8>, reply: &ClientReply) {
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

pub(super) fn read_reply(reader: &mut Reader<'_>) -> Result<ClientReply, DecodeError> {
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
