/*
 * Receiver sink for pod-b: drops IPv4 UDP to port 9 (the generator's traffic) and passes
 * everything else (ARP, ping, ...). veth counts the frame in rx_packets before this runs,
 * so the harness still sees every frame that arrived.
 */
#include "common.h"

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	__u8 *data = (__u8 *)(long)ctx->data;
	__u8 *end = (__u8 *)(long)ctx->data_end;
	__u8 *ip = data + ETH_HLEN;
	__u8 *udp;
	__u32 ihl;

	if (ip + 20 > end)
		return XDP_PASS;
	if (data[12] != 0x08 || data[13] != 0x00) /* IPv4 */
		return XDP_PASS;
	if ((ip[0] >> 4) != 4 || ip[9] != 17) /* version 4, UDP */
		return XDP_PASS;
	if ((ip[6] & 0x1f) | ip[7]) /* not the first fragment: no UDP header */
		return XDP_PASS;
	ihl = (ip[0] & 0x0f) * 4;
	if (ihl < 20)
		return XDP_PASS;
	udp = ip + ihl;
	if (udp + 8 > end)
		return XDP_PASS;
	if (udp[2] == 0 && udp[3] == 9) /* destination port 9 (discard) */
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
