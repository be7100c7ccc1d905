//! Networking: the wire format ([`codec`]). Connections and the server
//! loop that uses it arrive with the rest of issue #3.

pub mod codec;
