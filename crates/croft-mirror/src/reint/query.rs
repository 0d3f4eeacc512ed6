//! A query-only session to the target (verify): one question at a time.

use super::{connect, ReintError, QUERY_TIMEOUT};
use crate::link::PeerConfig;
use crate::wire::{self, Frame, Query, Sealed};
use std::io::{BufReader, Write};
use std::net::Shutdown;

/// A query-only session (verify): one question at a time.
pub(super) struct QueryClient {
    stream: Sealed,
    reader: BufReader<Sealed>,
    next: u64,
}

impl QueryClient {
    pub(super) fn connect(peer: &PeerConfig) -> Result<QueryClient, ReintError> {
        let stream = connect(peer)?;
        let _ = stream.set_read_timeout(Some(QUERY_TIMEOUT));
        let reader = BufReader::new(stream.try_clone().map_err(ReintError::Io)?);
        Ok(QueryClient { stream, reader, next: 1 })
    }

    pub(super) fn query(&mut self, q: &Query) -> Result<Vec<u8>, ReintError> {
        let id = self.next;
        self.next += 1;
        self.stream.write_all(&wire::query_frame(id, q)).map_err(|e| ReintError::Peer(format!("sending a query to the peer: {e}")))?;
        loop {
            match wire::read_frame(&mut self.reader) {
                Ok(Some(Frame::Reply { id: rid, body })) if rid == id => return Ok(body),
                Ok(Some(_)) => continue,
                Ok(None) => return Err(ReintError::Peer("the peer closed the verify session".into())),
                Err(e) => return Err(ReintError::Peer(format!("reading from the peer: {e}"))),
            }
        }
    }
}

impl Drop for QueryClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
