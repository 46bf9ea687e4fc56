//! The only unsafe code of this crate: an anonymous, page-aligned memory mapping, and the
//! TUN/TAP and interface ioctls in [`tun`].

pub(crate) mod tun;

use std::io;
use std::ptr::NonNull;

/// An anonymous private mapping, unmapped on drop.
///
/// # Thread safety
/// The mapping is owned by one worker; it is `Send` so that the worker can be built on the
/// control thread and moved to its own thread, and not `Sync`.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving the owner to another thread
// moves the only handle to it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of zeroed, populated memory.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
        // the result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// A shared view of `len` bytes at `offset`; `None` when out of range.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: the range was checked to lie inside the mapping, which lives as long as `self`.
        // Frames that the kernel may write (on a fill or TX ring) are not owned by userspace and
        // the pool never hands out their descriptors, so no view aliases a kernel write.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// A mutable view of `len` bytes at `offset`; `None` when out of range.
    pub(crate) fn slice_mut(&mut self, offset: usize, len: usize) -> Option<&mut [u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: as in `slice`; `&mut self` guarantees no other view from this mapping is alive.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; no view outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
