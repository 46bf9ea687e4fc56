/* See shim.h. */
#include "shim.h"

int xvs_errno(void)
{
	return rte_errno;
}

uint64_t xvs_rss_hf_default(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint32_t xvs_mbuf_size(void)
{
	return sizeof(struct rte_mbuf);
}

uint32_t xvs_pool_avail(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}

struct rte_mempool *xvs_pool_create(const char *name, void *addr, size_t len,
				    uint32_t frame_size, int socket, uint32_t *hdr)
{
	const unsigned flags = RTE_MEMPOOL_F_NO_SPREAD | RTE_MEMPOOL_F_SP_PUT |
			       RTE_MEMPOOL_F_SC_GET;
	struct rte_mempool_objsz sz;
	uint32_t hdr_size = RTE_ALIGN_CEIL(sizeof(struct rte_mempool_objhdr), RTE_MEMPOOL_ALIGN);
	if (frame_size == 0 || len % frame_size != 0 || len / frame_size == 0 ||
	    frame_size < hdr_size + sizeof(struct rte_mbuf) + RTE_PKTMBUF_HEADROOM + 64 ||
	    frame_size - hdr_size - sizeof(struct rte_mbuf) > UINT16_MAX ||
	    ((uintptr_t)addr % frame_size) != 0) {
		rte_errno = EINVAL;
		return NULL;
	}
	uint32_t elt = frame_size - hdr_size;
	/* The object stride must be exactly one frame, so that frame i is object i. */
	if (rte_mempool_calc_obj_size(elt, flags, &sz) != frame_size || sz.header_size != hdr_size) {
		rte_errno = EINVAL;
		return NULL;
	}
	unsigned n = (unsigned)(len / frame_size);
	struct rte_mempool *mp = rte_mempool_create_empty(name, n, elt, 0,
		sizeof(struct rte_pktmbuf_pool_private), socket, flags);
	if (mp == NULL)
		return NULL;
	struct rte_pktmbuf_pool_private priv = {
		.mbuf_data_room_size = (uint16_t)(elt - sizeof(struct rte_mbuf)),
		.mbuf_priv_size = 0,
		.flags = 0,
	};
	rte_pktmbuf_pool_init(mp, &priv);
	int ret = rte_mempool_populate_virt(mp, addr, len, frame_size, NULL, NULL);
	if (ret < 0 || mp->populated_size != n) {
		rte_mempool_free(mp);
		rte_errno = ret < 0 ? -ret : ENOMEM;
		return NULL;
	}
	/* Empty it again, checking every object sits hdr_size bytes into a frame. */
	void *objs[XVS_MAX_BURST];
	for (;;) {
		unsigned avail = rte_mempool_avail_count(mp);
		if (avail == 0)
			break;
		if (avail > XVS_MAX_BURST)
			avail = XVS_MAX_BURST;
		if (rte_mempool_get_bulk(mp, objs, avail) < 0)
			break;
		for (unsigned i = 0; i < avail; i++) {
			uintptr_t off = (uintptr_t)objs[i] - (uintptr_t)addr;
			if ((uintptr_t)objs[i] < (uintptr_t)addr || off >= len ||
			    off % frame_size != hdr_size) {
				rte_mempool_free(mp);
				rte_errno = EINVAL;
				return NULL;
			}
		}
	}
	*hdr = hdr_size;
	return mp;
}

/* Makes the frame's header a free mbuf of `mp` (whose private size and data room are `priv`
 * and `room`). A frame that has been an mbuf of the worker's mempool (any mempool over the
 * region has the same layout) keeps a valid buffer description, so only the fields a free mbuf
 * must have are set; that is much cheaper than clearing and rebuilding the header, which is
 * done for a frame that never was an mbuf (one that came from AF_XDP or a tap). */
static inline void xvs_mbuf_adopt(struct rte_mempool *mp, uint16_t priv, uint16_t room,
				  struct rte_mbuf *m)
{
	if (m->buf_addr == (void *)((uintptr_t)m + sizeof(struct rte_mbuf) + priv) &&
	    m->buf_len == room && m->priv_size == priv) {
		m->pool = mp;
		m->next = NULL;
		m->nb_segs = 1;
		m->ol_flags = 0;
		rte_mbuf_refcnt_set(m, 1);
	} else {
		rte_pktmbuf_init(mp, NULL, m, 0);
	}
}

void xvs_pool_put(struct rte_mempool *mp, uintptr_t base, uint32_t hdr,
		  const uint64_t *frames, uint32_t n)
{
	void *objs[XVS_MAX_BURST];
	uint16_t priv = rte_pktmbuf_priv_size(mp), room = rte_pktmbuf_data_room_size(mp);
	if (n > XVS_MAX_BURST)
		n = XVS_MAX_BURST;
	for (uint32_t i = 0; i < n; i++) {
		struct rte_mbuf *m = (struct rte_mbuf *)(base + frames[i] + hdr);
		xvs_mbuf_adopt(mp, priv, room, m);
		objs[i] = m;
	}
	rte_mempool_put_bulk(mp, objs, n);
}

uint32_t xvs_pool_get(struct rte_mempool *mp, uintptr_t base, uint32_t hdr,
		      uint64_t *frames, uint32_t n)
{
	void *objs[XVS_MAX_BURST];
	unsigned avail = rte_mempool_avail_count(mp);
	if (n > XVS_MAX_BURST)
		n = XVS_MAX_BURST;
	if (n > avail)
		n = avail;
	if (n == 0 || rte_mempool_get_bulk(mp, objs, n) < 0)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		frames[i] = (uint64_t)((uintptr_t)objs[i] - base - hdr);
	return n;
}

uint16_t xvs_rx(uint16_t port, uint16_t queue, uintptr_t base, uint64_t region_len,
		uint32_t frame_size, uint32_t hdr, struct xvs_desc *out, uint16_t n,
		struct xvs_rx_counts *counts)
{
	struct rte_mbuf *pkts[XVS_MAX_BURST];
	uint16_t got_ok = 0, bad = 0;
	uint64_t bytes = 0;
	if (n > XVS_MAX_BURST)
		n = XVS_MAX_BURST;
	uint16_t got = rte_eth_rx_burst(port, queue, pkts, n);
	for (uint16_t i = 0; i < got; i++) {
		struct rte_mbuf *m = pkts[i];
		uintptr_t mb = (uintptr_t)m;
		uint64_t frame = (uint64_t)(mb - base) - hdr;
		uintptr_t data = (uintptr_t)rte_pktmbuf_mtod(m, char *);
		if (mb < base + hdr || (uint64_t)(mb - base) >= region_len ||
		    frame % frame_size != 0 || m->nb_segs != 1 || data < mb ||
		    (uint64_t)(data - base) + m->data_len > frame + frame_size) {
			rte_pktmbuf_free(m);
			bad++;
			continue;
		}
		out[got_ok].addr = (uint64_t)(data - base);
		out[got_ok].len = m->data_len;
		out[got_ok].options = 0;
		bytes += m->data_len;
		got_ok++;
	}
	counts->dropped = bad;
	counts->bytes = bytes;
	return got_ok;
}

uint16_t xvs_tx(uint16_t port, uint16_t queue, struct rte_mempool *mp, uintptr_t base,
		uint32_t frame_size, uint32_t hdr, const struct xvs_desc *descs, uint16_t n)
{
	struct rte_mbuf *pkts[XVS_MAX_BURST];
	/* Read once per burst: the stores below could alias the pool's private area for all the
	 * compiler knows. */
	uint16_t priv = rte_pktmbuf_priv_size(mp), room = rte_pktmbuf_data_room_size(mp);
	if (n > XVS_MAX_BURST)
		n = XVS_MAX_BURST;
	for (uint16_t i = 0; i < n; i++) {
		uint64_t frame = descs[i].addr & ~(uint64_t)(frame_size - 1);
		struct rte_mbuf *m = (struct rte_mbuf *)(base + frame + hdr);
		/* The frame may come from another port (AF_XDP, tap) and never have been an mbuf,
		 * or be an mbuf a driver of this worker received into. */
		xvs_mbuf_adopt(mp, priv, room, m);
		m->tx_offload = 0;
		m->vlan_tci = 0;
		m->vlan_tci_outer = 0;
		m->packet_type = 0;
		m->data_off = (uint16_t)((base + descs[i].addr) - (uintptr_t)m->buf_addr);
		m->data_len = (uint16_t)descs[i].len;
		m->pkt_len = descs[i].len;
		m->port = port;
		pkts[i] = m;
	}
	return rte_eth_tx_burst(port, queue, pkts, n);
}

int xvs_dma_map(uint16_t port, void *addr, size_t len, size_t page_sz)
{
	struct rte_eth_dev_info info;
	if (rte_eal_iova_mode() != RTE_IOVA_VA)
		return -ENOTSUP;
	int r = rte_eth_dev_info_get(port, &info);
	if (r != 0)
		return r;
	if (rte_extmem_register(addr, len, NULL, 0, page_sz) != 0 && rte_errno != EEXIST)
		return -rte_errno;
	if (rte_dev_dma_map(info.device, addr, (uint64_t)(uintptr_t)addr, len) != 0 &&
	    rte_errno != EEXIST) {
		int e = rte_errno;
		rte_extmem_unregister(addr, len);
		return -e;
	}
	return 0;
}

void xvs_dma_unmap(uint16_t port, void *addr, size_t len)
{
	struct rte_eth_dev_info info;
	if (rte_eth_dev_info_get(port, &info) == 0)
		rte_dev_dma_unmap(info.device, addr, (uint64_t)(uintptr_t)addr, len);
	rte_extmem_unregister(addr, len);
}
