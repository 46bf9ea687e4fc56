/* xvs's C side of the DPDK binding: wrappers for DPDK's static-inline fast-path functions
 * (rte_eth_rx_burst, rte_eth_tx_burst, mbuf and mempool helpers), which have no symbol to link
 * against, plus a few helpers that move a whole burst across the language boundary in one call.
 * Every function here is plain C over DPDK; all pointer arithmetic on the worker's frame region is
 * bounds-checked here or by the Rust caller (see src/ffi.rs). */
#ifndef XVS_DPDK_SHIM_H
#define XVS_DPDK_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* Largest burst the helpers move in one call. */
#define XVS_MAX_BURST 256

/* rte_errno of the calling thread. */
int xvs_errno(void);

/* RSS hash functions requested on multi-queue ports: IPv4/IPv6 addresses and TCP/UDP ports. */
uint64_t xvs_rss_hf_default(void);

/* Creates a packet-mbuf mempool whose objects are the frames of [addr, addr + len): one object
 * per frame_size bytes, the mempool header at the frame's start, then the rte_mbuf, then its
 * data room up to the frame's end. The pool is returned empty (every object taken out again):
 * frames enter it only through xvs_pool_put. On success *hdr is the offset of the rte_mbuf from
 * the frame's start. NULL with rte_errno set on failure (EINVAL: geometry does not fit). */
struct rte_mempool *xvs_pool_create(const char *name, void *addr, size_t len,
				    uint32_t frame_size, int socket, uint32_t *hdr);

/* Initialises the mbufs of frames[0..n) (byte offsets from base) and puts them into mp.
 * n <= XVS_MAX_BURST. */
void xvs_pool_put(struct rte_mempool *mp, uintptr_t base, uint32_t hdr,
		  const uint64_t *frames, uint32_t n);

/* Takes up to n (<= XVS_MAX_BURST) mbufs out of mp; writes their frames' offsets from base.
 * Returns how many. */
uint32_t xvs_pool_get(struct rte_mempool *mp, uintptr_t base, uint32_t hdr,
		      uint64_t *frames, uint32_t n);

/* Mbufs currently in mp. */
uint32_t xvs_pool_avail(const struct rte_mempool *mp);

/* A packet in the worker's frame region; the layout of xvs_io::Desc (and of struct xdp_desc). */
struct xvs_desc {
	uint64_t addr;
	uint32_t len;
	uint32_t options;
};

/* What one xvs_rx call dropped and how many bytes it reported. */
struct xvs_rx_counts {
	uint64_t bytes;
	uint16_t dropped;
};

/* Receives up to n (<= XVS_MAX_BURST) packets from (port, queue). Each single-segment packet
 * whose mbuf is a frame of [base, base + region_len) is written to out as its data's offset from
 * base and its length; the others are freed and counted in counts->dropped. Returns how many
 * were written. */
uint16_t xvs_rx(uint16_t port, uint16_t queue, uintptr_t base, uint64_t region_len,
		uint32_t frame_size, uint32_t hdr, struct xvs_desc *out, uint16_t n,
		struct xvs_rx_counts *counts);

/* Turns the frames holding descs[i] (data at base + addr, len bytes; the caller has checked
 * each lies inside one frame of the region, at least hdr + sizeof(struct rte_mbuf) bytes into
 * it) into mbufs of mp and transmits them on (port, queue). Returns how many (a prefix) the
 * device accepted; the device frees those into mp when sent. */
uint16_t xvs_tx(uint16_t port, uint16_t queue, struct rte_mempool *mp, uintptr_t base,
		uint32_t frame_size, uint32_t hdr, const struct xvs_desc *descs, uint16_t n);

/* sizeof(struct rte_mbuf). */
uint32_t xvs_mbuf_size(void);

#endif

#ifndef XVS_DPDK_SHIM_DMA
#define XVS_DPDK_SHIM_DMA
/* Makes [addr, addr + len) usable for DMA by a bus device (PCI NICs): registers it as external
 * memory and maps it in the device's IOMMU domain with IOVA = VA. Needs EAL in IOVA-as-VA mode.
 * Returns 0 or a negative errno. */
int xvs_dma_map(uint16_t port, void *addr, size_t len, size_t page_sz);
/* Undoes xvs_dma_map (errors ignored). */
void xvs_dma_unmap(uint16_t port, void *addr, size_t len);
#endif
