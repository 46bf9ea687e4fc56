//! Panic-free big-endian reads and writes at fixed offsets.
//!
//! Every view reads through these helpers: an out-of-range read yields zero and an out-of-range
//! write is ignored. After a view's `new_checked` succeeded no access is ever out of range, so
//! the fallback never triggers; it exists so that no input, and no misuse of `new_unchecked`,
//! can make a getter panic. The range test is the bounds check the indexing would do anyway.

#[inline(always)]
pub(crate) fn u8_at(d: &[u8], off: usize) -> u8 {
    match d.get(off) {
        Some(b) => *b,
        None => 0,
    }
}

#[inline(always)]
pub(crate) fn arr<const N: usize>(d: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = off.checked_add(N).and_then(|end| d.get(off..end)) {
        out.copy_from_slice(s);
    }
    out
}

#[inline(always)]
pub(crate) fn be16(d: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(arr::<2>(d, off))
}

#[inline(always)]
pub(crate) fn be32(d: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(arr::<4>(d, off))
}

/// The bytes from `start` to `end` (clamped to the buffer; empty when `start` is past it).
#[inline(always)]
pub(crate) fn slice(d: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(d.len());
    d.get(start..end).unwrap_or(&[])
}

#[inline(always)]
pub(crate) fn slice_mut(d: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(d.len());
    d.get_mut(start..end).unwrap_or(&mut [])
}

#[inline(always)]
pub(crate) fn set_u8(d: &mut [u8], off: usize, v: u8) {
    if let Some(b) = d.get_mut(off) {
        *b = v;
    }
}

#[inline(always)]
pub(crate) fn set_bytes(d: &mut [u8], off: usize, v: &[u8]) {
    if let Some(s) = off.checked_add(v.len()).and_then(|end| d.get_mut(off..end)) {
        s.copy_from_slice(v);
    }
}

#[inline(always)]
pub(crate) fn set_be16(d: &mut [u8], off: usize, v: u16) {
    set_bytes(d, off, &v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn set_be32(d: &mut [u8], off: usize, v: u32) {
    set_bytes(d, off, &v.to_be_bytes());
}
