//! Round trips of every frame, cut frames, and garbage.

use super::*;
use crate::merkle;
use crate::protocol::{ClientError, StoreError};
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
    )
    .unwrap();
    set.put(actor, &VectorClock::new(), None, 6, Versioning::Dvv, 10)
        .unwrap();
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
            set: set.clone(),
        },
        Message::HandoffAck { key: b"k".to_vec() },
        Message::Ping,
        Message::Pong,
        Message::TreeQuery {
            exchange: 7,
            partition: PartitionId(3),
            request: merkle::Request::Segments(vec![1, 4095]),
        },
        Message::TreeQuery {
            exchange: 8,
            partition: PartitionId(0),
            request: merkle::Request::Root,
        },
        Message::TreeReply {
            exchange: 7,
            partition: PartitionId(3),
            response: Some(merkle::Response::Segments(vec![vec![(b"k".to_vec(), 9)], Vec::new()])),
        },
        Message::TreeReply {
            exchange: 9,
            partition: PartitionId(65_535),
            response: None,
        },
        Message::Repair {
            key: b"k".to_vec(),
            set,
            back: true,
        },
        Message::Reap {
            key: b"k".to_vec(),
            hash: u64::MAX - 1,
        },
        Message::Reaped { key: b"k".to_vec() },
        Message::Gossip {
            ring: crate::ring::Ring::new(8, &[NodeId(0), NodeId(1)]).unwrap(),
            next: None,
            ready: Vec::new(),
        },
        Message::Gossip {
            ring: crate::ring::Ring::new(8, &[NodeId(0), NodeId(1)]).unwrap(),
            next: Some({
                let mut next = crate::ring::Ring::new(8, &[NodeId(0), NodeId(1)]).unwrap();
                next.join(NodeId(7)).unwrap();
                next
            }),
            ready: vec![NodeId(7)],
        },
        Message::Join,
    ];
    let transfers = vec![
        Transfer::Ask {
            partition: PartitionId(3),
            have: vec![("0000000001.seg".into(), 4096), ("MANIFEST".into(), 0)],
        },
        Transfer::File {
            name: "0000000002.seg".into(),
            len: 10,
            from: 4,
        },
        Transfer::Chunk(vec![1, 2, 3]),
        Transfer::FileEnd { sha256: [7; 32] },
        Transfer::Done,
        Transfer::Failed("gone".into()),
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
    frames.extend(transfers.into_iter().map(Frame::Transfer));
    frames.push(Frame::Admin {
        id: 7,
        query: AdminQuery::Ring,
    });
    frames.push(Frame::PeerHello {
        from: NodeId(3),
        nonce: [7; NONCE_BYTES],
    });
    frames.push(Frame::PeerChallenge {
        nonce: [1; NONCE_BYTES],
        proof: [255; NONCE_BYTES],
    });
    frames.push(Frame::PeerProof {
        proof: [9; NONCE_BYTES],
    });
    frames.push(Frame::Admin {
        id: 8,
        query: AdminQuery::Stats,
    });
    frames.push(Frame::AdminReply {
        id: 8,
        answer: AdminAnswer::Stats(Box::new(crate::admin::StatsReport {
            node: NodeId(2),
            keys: 5,
            ..Default::default()
        })),
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
    // A transfer's file names stay inside the partition directory.
    for name in ["../NODE", "a/b", "..", ".", ""] {
        let mut bytes = Vec::new();
        encode_frame(
            &Frame::Transfer(Transfer::File {
                name: name.into(),
                len: 1,
                from: 0,
            }),
            &mut bytes,
        );
        assert!(
            matches!(decode_frame(&bytes), Err(FrameError::Malformed(_))),
            "{name:?} was taken"
        );
    }
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

/// Writes the fuzz seed corpus (`core/tests/corpus/`): every sample frame,
/// and the contexts they carry. Run after a format change:
/// `cargo test -p dynamo-core --lib write_fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes the committed seed corpus"]
fn write_fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for dir in ["frames", "contexts"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (index, frame) in samples().iter().enumerate() {
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        std::fs::write(root.join(format!("frames/seed-{index:02}.bin")), bytes).unwrap();
    }
    let contexts = [VectorClock::new(), sample_set().context()];
    for (index, context) in contexts.iter().enumerate() {
        let text = crate::version::encode_context(context);
        std::fs::write(root.join(format!("contexts/seed-{index:02}.txt")), text).unwrap();
    }
}
