/*
 * Traffic generator program, run with BPF_PROG_TEST_RUN + BPF_F_TEST_XDP_LIVE_FRAMES.
 *
 * The kernel hands it the 60-byte Ethernet/IPv4/UDP template; XDP_TX becomes a redirect out of
 * the device named by ctx->ingress_ifindex (ndo_xdp_xmit, no skb). With NFLOWS > 1 the UDP
 * source port is rotated over SPORT_BASE .. SPORT_BASE + NFLOWS - 1, one step per frame.
 * The UDP checksum is 0 (not used), so nothing else changes. The loader overrides the two
 * constants; one generator process runs one test run on one CPU, so the counter needs no atomics.
 */
#include "common.h"

volatile const __u32 NFLOWS = 1;
volatile const __u32 SPORT_BASE = 1024;

/* Index of the next flow (in .bss). */
__u32 flow_next = 0;

/* Offset of the UDP source port: Ethernet (14) + IPv4 without options (20). */
#define SPORT_OFF (ETH_HLEN + 20)

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;

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
