//! Frame region and free list.

use crate::port::Desc;
use crate::sys::Mapping;
use std::ptr::NonNull;

/// Default frame size: one 4 KiB page per frame, as AF_XDP's aligned mode allows.
pub const DEFAULT_FRAME_SIZE: u32 = 4096;
/// Room left in front of received data for encapsulation headers (VLAN push, tunnels).
pub const DEFAULT_HEADROOM: u32 = 256;

/// Errors building a pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The frame size is not a power of two between 2048 and 65536.
    #[error("frame size {0} must be a power of two between 2048 and 65536")]
    FrameSize(u32),
    /// The frame count is zero or the region would exceed the address space.
    #[error("frame count {0} is out of range")]
    FrameCount(u32),
    /// Headroom leaves no room for a packet.
    #[error("headroom {headroom} leaves no room in a {frame_size}-byte frame")]
    Headroom {
        /// Requested headroom.
        headroom: u32,
        /// Frame size.
        frame_size: u32,
    },
    /// The memory mapping failed.
    #[error("mapping {bytes} bytes of frame memory: {source}")]
    Map {
        /// Size of the mapping.
        bytes: usize,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A page-aligned memory region cut into `frame_count` frames of `frame_size` bytes.
///
/// Frame addresses are byte offsets from the start of the region, as AF_XDP descriptors use.
#[derive(Debug)]
pub struct FrameRegion {
    map: Mapping,
    frame_size: u32,
    frame_count: u32,
}

impl FrameRegion {
    /// Maps a new region.
    pub fn new(frame_count: u32, frame_size: u32) -> Result<Self, PoolError> {
        if !frame_size.is_power_of_two() || !(2048..=65536).contains(&frame_size) {
            return Err(PoolError::FrameSize(frame_size));
        }
        let bytes = (frame_count as usize)
            .checked_mul(frame_size as usize)
            .filter(|b| *b > 0)
            .ok_or(PoolError::FrameCount(frame_count))?;
        let map = Mapping::new(bytes).map_err(|source| PoolError::Map { bytes, source })?;
        Ok(Self {
            map,
            frame_size,
            frame_count,
        })
    }

    /// Size of every frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Number of frames.
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Start and length of the region, for registering it with the kernel as a UMEM.
    pub fn raw_parts(&self) -> (NonNull<u8>, usize) {
        (self.map.as_ptr(), self.map.len())
    }

    /// The base address of the frame holding `addr`.
    #[inline]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !u64::from(self.frame_size - 1)
    }

    /// True when `d` lies inside one frame of the region.
    #[inline]
    pub fn contains(&self, d: Desc) -> bool {
        let base = self.frame_base(d.addr);
        d.addr < self.map.len() as u64
            && d.addr + u64::from(d.len) <= base + u64::from(self.frame_size)
    }

    /// The packet bytes a descriptor points at; empty when the descriptor is out of range.
    #[inline]
    pub fn data(&self, d: Desc) -> &[u8] {
        if !self.contains(d) {
            return &[];
        }
        self.map
            .slice(d.addr as usize, d.len as usize)
            .unwrap_or(&[])
    }

    /// The packet bytes a descriptor points at, writable; empty when out of range.
    #[inline]
    pub fn data_mut(&mut self, d: Desc) -> &mut [u8] {
        if !self.contains(d) {
            return &mut [];
        }
        self.map
            .slice_mut(d.addr as usize, d.len as usize)
            .unwrap_or(&mut [])
    }

    /// Copies the bytes of `src` to `dst.addr` (`dst.len` must equal `src.len`); both must lie
    /// inside the region, each within one frame, and not overlap. False when they do not.
    pub fn copy_data(&mut self, src: Desc, dst: Desc) -> bool {
        if src.len != dst.len || !self.contains(src) || !self.contains(dst) {
            return false;
        }
        let (s, d, n) = (src.addr as usize, dst.addr as usize, src.len as usize);
        if s < d + n && d < s + n {
            return false;
        }
        match self.map.slice_mut(0, self.map.len()) {
            Some(all) => {
                all.copy_within(s..s + n, d);
                true
            }
            None => false,
        }
    }

    /// A whole frame, from its base, writable; empty when out of range.
    #[inline]
    pub fn frame_mut(&mut self, base: u64) -> &mut [u8] {
        let base = self.frame_base(base);
        self.map
            .slice_mut(base as usize, self.frame_size as usize)
            .unwrap_or(&mut [])
    }
}

/// A worker's frames: the region and the stack of frames userspace owns and nobody uses.
///
/// # Thread safety
/// Owned by exactly one worker thread; never shared.
#[derive(Debug)]
pub struct FramePool {
    region: FrameRegion,
    free: Vec<u64>,
    headroom: u32,
}

impl FramePool {
    /// A pool of `frame_count` frames of `frame_size` bytes, all free, with `headroom` bytes
    /// reserved in front of data placed by [`FramePool::alloc_desc`].
    pub fn new(frame_count: u32, frame_size: u32, headroom: u32) -> Result<Self, PoolError> {
        if headroom >= frame_size.saturating_sub(64) {
            return Err(PoolError::Headroom {
                headroom,
                frame_size,
            });
        }
        let region = FrameRegion::new(frame_count, frame_size)?;
        // Pop order gives low addresses first, which keeps a lightly loaded pool cache-warm.
        let free = (0..u64::from(frame_count))
            .rev()
            .map(|i| i * u64::from(frame_size))
            .collect();
        Ok(Self {
            region,
            free,
            headroom,
        })
    }

    /// The memory behind the frames.
    #[inline]
    pub fn region(&self) -> &FrameRegion {
        &self.region
    }

    /// The memory behind the frames, writable.
    #[inline]
    pub fn region_mut(&mut self) -> &mut FrameRegion {
        &mut self.region
    }

    /// Headroom in front of data placed by [`FramePool::alloc_desc`].
    pub fn headroom(&self) -> u32 {
        self.headroom
    }

    /// Number of free frames.
    #[inline]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Takes a free frame; returns its base address.
    #[inline]
    pub fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Takes a free frame and returns a descriptor for `len` bytes after the headroom.
    #[inline]
    pub fn alloc_desc(&mut self, len: u32) -> Option<Desc> {
        let max = self.region.frame_size - self.headroom;
        if len > max {
            return None;
        }
        let base = self.free.pop()?;
        Some(Desc {
            addr: base + u64::from(self.headroom),
            len,
            options: 0,
        })
    }

    /// Returns the frame holding `addr` to the free list.
    ///
    /// Addresses outside the region are ignored, so a corrupt descriptor from the kernel cannot
    /// poison the pool. Freeing a frame twice is a bug in the caller; it is caught in debug builds.
    #[inline]
    pub fn free(&mut self, addr: u64) {
        let base = self.region.frame_base(addr);
        if base >= self.region.raw_parts().1 as u64 {
            return;
        }
        debug_assert!(
            self.free.len() < self.region.frame_count as usize,
            "frame freed twice"
        );
        if self.free.len() < self.region.frame_count as usize {
            self.free.push(base);
        }
    }

    /// Returns every frame of `descs` to the free list.
    #[inline]
    pub fn free_all(&mut self, descs: &[Desc]) {
        for d in descs {
            self.free(d.addr);
        }
    }

    /// Copies `bytes` into a new frame; `None` when the pool is empty or the frame too small.
    pub fn alloc_copy(&mut self, bytes: &[u8]) -> Option<Desc> {
        let len = u32::try_from(bytes.len()).ok()?;
        let d = self.alloc_desc(len)?;
        self.region.data_mut(d).copy_from_slice(bytes);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_and_free_round_trip() {
        let mut p = FramePool::new(8, 2048, 256).expect("pool");
        assert_eq!(p.free_count(), 8);
        let d = p.alloc_copy(&[1, 2, 3]).expect("frame");
        assert_eq!(d.addr, 256);
        assert_eq!(p.region().data(d), &[1, 2, 3]);
        assert_eq!(p.free_count(), 7);
        p.free(d.addr);
        assert_eq!(p.free_count(), 8);
        assert_eq!(p.alloc(), Some(0));
    }

    #[test]
    fn bad_descriptors_give_empty_views() {
        let mut p = FramePool::new(2, 2048, 0).expect("pool");
        let out_of_range = Desc {
            addr: 1 << 40,
            len: 10,
            options: 0,
        };
        assert!(p.region().data(out_of_range).is_empty());
        let crossing = Desc {
            addr: 2000,
            len: 100,
            options: 0,
        };
        assert!(p.region_mut().data_mut(crossing).is_empty());
        p.free(1 << 40);
        assert_eq!(p.free_count(), 2);
    }

    #[test]
    fn rejects_bad_geometry() {
        assert!(matches!(
            FramePool::new(4, 3000, 0),
            Err(PoolError::FrameSize(3000))
        ));
        assert!(matches!(
            FramePool::new(0, 2048, 0),
            Err(PoolError::FrameCount(0))
        ));
        assert!(matches!(
            FramePool::new(4, 2048, 2048),
            Err(PoolError::Headroom { .. })
        ));
    }
}
