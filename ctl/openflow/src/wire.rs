//! Byte-level helpers: a bounds-checked reader and big-endian writers.

use crate::error::OfpError;

/// A cursor over a byte slice; every read is bounds-checked and fails with the error given at
/// construction (the "bad length" error of the enclosing structure).
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    err: OfpError,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], err: OfpError) -> Self {
        Reader { buf, pos: 0, err }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], OfpError> {
        if self.remaining() < n {
            return Err(self.err);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), OfpError> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, OfpError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, OfpError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, OfpError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, OfpError> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
}

/// Reads a big-endian unsigned value of up to 16 bytes.
pub(crate) fn be_uint(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |acc, &x| (acc << 8) | u128::from(x))
}

/// Appends the low `n` bytes of `v`, big-endian.
pub(crate) fn put_uint(out: &mut Vec<u8>, v: u128, n: usize) {
    for i in (0..n).rev() {
        out.push((v >> (8 * i)) as u8);
    }
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Pads `out` with zeros until its length from `start` is a multiple of 8.
pub(crate) fn pad8(out: &mut Vec<u8>, start: usize) {
    while (out.len() - start) % 8 != 0 {
        out.push(0);
    }
}

/// Writes `len` as a big-endian u16 at `at` (a length field reserved earlier).
pub(crate) fn patch_u16(out: &mut [u8], at: usize, len: usize) {
    let v = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    out[at] = v[0];
    out[at + 1] = v[1];
}
