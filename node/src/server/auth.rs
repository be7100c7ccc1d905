//! Peer authentication: a mutual challenge–response over HMAC-SHA256 with
//! the cluster secret, before a node takes any peer message on a
//! connection. Without it any TCP client could send peer frames — fake
//! write acknowledgements that satisfy W with nothing persisted, or hinted
//! writes for nodes that do not exist.
//!
//! ```text
//! opener   → acceptor   PeerHello     { from: opener, nonce_o }
//! acceptor → opener     PeerChallenge { nonce_a, proof = HMAC(k, "accept" ‖ ids ‖ nonce_o ‖ nonce_a) }
//! opener   → acceptor   PeerProof     { proof = HMAC(k, "open"   ‖ ids ‖ nonce_o ‖ nonce_a) }
//! ```
//!
//! `ids` is the opener's node id then the acceptor's (u32 big-endian
//! each), so a proof cannot be replayed between other nodes or in the
//! other direction; each side's fresh nonce makes it useless on another
//! connection. Proofs are compared in constant time. A node with no secret
//! (allowed only when every member is on loopback) skips the handshake and
//! takes peer frames as before.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use dynamo_core::ids::NodeId;
use dynamo_core::wire::NONCE_BYTES;

/// A handshake nonce or proof.
pub(super) type Bytes = [u8; NONCE_BYTES];

/// What a node needs to prove itself to its peers and check them.
pub(super) struct PeerAuth {
    /// This node.
    pub(super) me: NodeId,
    /// The address it listens on (peer connections start from it).
    pub(super) ip: std::net::IpAddr,
    /// The members it takes peer frames from.
    pub(super) members: Vec<NodeId>,
    /// The cluster secret (none: peers are not authenticated).
    pub(super) secret: Option<Vec<u8>>,
}

/// Which side of the handshake a proof is from.
#[derive(Clone, Copy)]
pub(super) enum Side {
    /// The node that opened the connection.
    Opener,
    /// The node that accepted it.
    Acceptor,
}

/// A fresh nonce from the kernel.
///
/// # Errors
/// `/dev/urandom` cannot be read.
pub(super) fn nonce() -> std::io::Result<Bytes> {
    let mut bytes = [0u8; NONCE_BYTES];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes)
}

fn mac(secret: &[u8], side: Side, opener: NodeId, acceptor: NodeId, nonces: (&Bytes, &Bytes)) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(match side {
        Side::Opener => b"dynamo peer open",
        Side::Acceptor => b"dynamo peer accept",
    });
    mac.update(&opener.0.to_be_bytes());
    mac.update(&acceptor.0.to_be_bytes());
    mac.update(nonces.0);
    mac.update(nonces.1);
    mac
}

/// The proof `side` gives for a handshake between `opener` and `acceptor`
/// with the opener's and the acceptor's nonces.
pub(super) fn proof(secret: &[u8], side: Side, opener: NodeId, acceptor: NodeId, nonces: (&Bytes, &Bytes)) -> Bytes {
    let mut out = [0u8; NONCE_BYTES];
    out.copy_from_slice(&mac(secret, side, opener, acceptor, nonces).finalize().into_bytes());
    out
}

/// Whether `proof` is `side`'s, compared in constant time.
pub(super) fn verify(
    secret: &[u8],
    side: Side,
    opener: NodeId,
    acceptor: NodeId,
    nonces: (&Bytes, &Bytes),
    proof: &Bytes,
) -> bool {
    mac(secret, side, opener, acceptor, nonces).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_only_for_its_side_ids_nonces_and_secret() {
        let secret = b"a secret of sixteen bytes or more";
        let (a, b) = ([1u8; NONCE_BYTES], [2u8; NONCE_BYTES]);
        let good = proof(secret, Side::Opener, NodeId(1), NodeId(2), (&a, &b));
        assert!(verify(secret, Side::Opener, NodeId(1), NodeId(2), (&a, &b), &good));
        assert!(!verify(secret, Side::Acceptor, NodeId(1), NodeId(2), (&a, &b), &good));
        assert!(!verify(secret, Side::Opener, NodeId(2), NodeId(1), (&a, &b), &good));
        assert!(!verify(secret, Side::Opener, NodeId(1), NodeId(2), (&b, &a), &good));
        assert!(!verify(
            b"another secret, also long",
            Side::Opener,
            NodeId(1),
            NodeId(2),
            (&a, &b),
            &good
        ));
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
