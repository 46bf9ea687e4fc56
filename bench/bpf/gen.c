/*
 * Traffic generator program, run with BPF_PROG_TEST_RUN + BPF_F_TEST_XDP_LIVE_FRAMES.
 *
 * The kernel hands it the 60-byte Ethernet/IPv4/UDP template; XDP_TX becomes a redirect out of
 * the device named by ctx->ingress_ifindex (ndo_xdp_xmit, no skb). With NFLOWS > 1 the UDP
 * source port is rotated over SPORT_BASE .. SPORT_BASE + NFLOWS - 1, one step per frame.
 * The UDP checksum is 0 (not used), so nothing else changes. The loader overrides the
 * constants; one generator process runs one test run on one CPU, so the counters need no atomics.
 *
 * With NEW_CONNS set, every frame carries a 5-tuple not sent before (until the sequence wraps
 * after (65536 - SPORT_BASE) * 254 frames): the source port walks SPORT_BASE .. 65535 and, at
 * each wrap, the last octet of the destination address advances over 1 .. 254 (the /24 stays
 * the same, so the switch still forwards by MAC). The IPv4 header checksum is recomputed from
 * scratch, because live-frames mode may hand back a page that an earlier run already rewrote.
 */
#include "common.h"

volatile const __u32 NFLOWS = 1;
volatile const __u32 SPORT_BASE = 1024;
volatile const __u32 NEW_CONNS = 0;

/* Index of the next flow (in .bss). */
__u32 flow_next = 0;
/* NEW_CONNS: index of the next source port and destination host. */
__u32 conn_port = 0;
__u32 conn_host = 0;

/* Offset of the UDP source port: Ethernet (14) + IPv4 without options (20). */
#define SPORT_OFF (ETH_HLEN + 20)
#define IP_HLEN 20
/* Destination hosts x.x.x.1 .. x.x.x.254. */
#define CONN_HOSTS 254

static __attribute__((always_inline)) int next_conn(__u8 *data, __u8 *end)
{
	__u8 *ip = data + ETH_HLEN;
	__u32 p = conn_port;
	__u32 h = conn_host;
	__u32 port = SPORT_BASE + p;
	__u32 sum = 0;
	int k;

	if (ip + IP_HLEN + 8 > end)
		return XDP_ABORTED;
	ip[IP_HLEN] = (__u8)(port >> 8);
	ip[IP_HLEN + 1] = (__u8)port;
	ip[19] = (__u8)(1 + h);
	ip[10] = 0;
	ip[11] = 0;
#pragma unroll
	for (k = 0; k < IP_HLEN; k += 2)
		sum += ((__u32)ip[k] << 8) | ip[k + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum;
	ip[10] = (__u8)(sum >> 8);
	ip[11] = (__u8)sum;

	p++;
	if (p >= 65536 - SPORT_BASE) {
		p = 0;
		h++;
		if (h >= CONN_HOSTS)
			h = 0;
		conn_host = h;
	}
	conn_port = p;
	return XDP_TX;
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;

	if (NEW_CONNS)
		return next_conn(data, end);
	if (NFLOWS > 1) {
		__u32 i = flow_next;
		__u32 port = SPORT_BASE + i;

		if (data + SPORT_OFF + 2 > end)
			return XDP_ABORTED;
		data[SPORT_OFF] = (__u8)(port >> 8);
		data[SPORT_OFF + 1] = (__u8)port;
		i++;
		if (i >= NFLOWS)
			i = 0;
		flow_next = i;
	}
	return XDP_TX;
}

char _license[] SEC("license") = "Dual BSD/GPL";
