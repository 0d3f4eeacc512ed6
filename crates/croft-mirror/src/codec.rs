//! The little-endian codec of the mirror's binary forms: operations ([`crate::op`]), frames and
//! queries ([`crate::wire`]) and query replies ([`crate::sync`]). Lengths are u32 prefixes;
//! decoding never reads past its buffer and reports a truncation as an error.

use crate::sys::SetTime;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(crate) struct Enc<'a>(pub(crate) &'a mut Vec<u8>);
impl Enc<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    pub(crate) fn path(&mut self, p: &Path) {
        self.bytes(p.as_os_str().as_bytes());
    }
    pub(crate) fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u32(v);
            }
        }
    }
    pub(crate) fn time(&mut self, t: SetTime) {
        match t {
            SetTime::Omit => self.u8(0),
            SetTime::At { sec, nsec } => {
                self.u8(1);
                self.u64(sec as u64);
                self.u64(nsec as u64);
            }
        }
    }
}

pub(crate) struct Dec<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}
impl Dec<'_> {
    pub(crate) fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.buf.len() - self.pos < n {
            return Err("operation truncated".into());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn path(&mut self) -> Result<PathBuf, String> {
        Ok(PathBuf::from(OsStr::from_bytes(&self.bytes()?)))
    }
    pub(crate) fn opt_u32(&mut self) -> Result<Option<u32>, String> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.u32()?),
        })
    }
    pub(crate) fn time(&mut self) -> Result<SetTime, String> {
        Ok(match self.u8()? {
            0 => SetTime::Omit,
            _ => SetTime::At { sec: self.u64()? as i64, nsec: self.u64()? as i64 },
        })
    }
}
