//! croft's network core, with no napi dependency (STYLE.md: three layers at the native boundary).
//!
//! - [`jhash`]: the kernel's jhash and nft's `jhash ... mod N` bucket.
//! - [`nft_key`]: the nft register bytes a `jhash ip saddr [. tcp sport]` expression hashes.
//! - [`heartbeat`], [`quiet`]: the heartbeat pump's threads and its quiet path.
//! - [`arp`]: ARP frames (pure) and, on Linux, an AF_PACKET responder and gratuitous ARP sender.

pub mod arp;
pub mod heartbeat;
pub mod jhash;
pub mod mac;
pub mod nft_key;
pub mod quiet;

pub use jhash::{jhash, nft_jhash, reciprocal_scale};
