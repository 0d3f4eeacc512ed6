//! ARP and IPv6 neighbour discovery ([`ndp`]) for a VIP: pure frame building/parsing and the reply decision ([`frame`]), and on Linux
//! the AF_PACKET socket ([`socket`]) and the responder thread ([`responder`]) that drive it.

pub mod frame;
pub mod ndp;
#[cfg(target_os = "linux")]
pub mod responder;
#[cfg(target_os = "linux")]
pub mod socket;

pub use frame::{ArpOp, ArpPacket, EthArpFrame, FrameError};
