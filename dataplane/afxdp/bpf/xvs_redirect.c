// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * xvs XDP program: hand frames to the AF_XDP socket bound to the receiving queue.
 *
 * Header-free on purpose: the few kernel types, constants and helper ids it needs are declared
 * here, so building it needs only clang (no kernel headers, no libbpf-dev).
 *
 * Maps:
 *   xsks        XSKMAP, key = rx queue index, value = AF_XDP socket. A queue with no socket falls
 *               through to XDP_PASS (the low bits of bpf_redirect_map's flags are the miss action).
 *   xvs_config  ARRAY of one `struct xvs_config`. Zeroed at load, which means "redirect every
 *               frame". Userspace writes it to change the policy without reloading the program.
 *
 * Modes (xvs_config.mode):
 *   0 REDIRECT_ALL  every frame goes to the queue's socket (or the stack when none is bound).
 *   1 PASS_ALL      every frame goes to the kernel stack; sockets stay bound but idle.
 *   2 FILTER        only the frames xvs must see go to the socket: UDP to a tunnel port
 *                   (IPv4 or IPv6 without extension headers) and IPv4 frames whose destination is
 *                   in the node's Pod CIDR; the rest (node management traffic) goes to the stack.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };

#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_XSKMAP 17

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

/* Helper ids from the kernel's uapi bpf.h (stable ABI). */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

#define XVS_MAX_QUEUES 256

/* Keep in sync with `XdpConfig` in src/program.rs. All multi-byte fields in network byte order
 * except `mode`. */
struct xvs_config {
	__u32 mode;
	__u16 tunnel_port; /* UDP destination port of the overlay (Geneve 6081, VXLAN 4789); 0 = none */
	__u16 tunnel_port2; /* a second overlay port (Geneve and VXLAN on one node); 0 = none */
	__u32 pod_net4;    /* IPv4 Pod CIDR network address */
	__u32 pod_mask4;   /* IPv4 Pod CIDR mask; 0 = no Pod CIDR */
};

#define XVS_MODE_REDIRECT_ALL 0
#define XVS_MODE_PASS_ALL 1
#define XVS_MODE_FILTER 2

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XVS_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_config);
} xvs_config SEC(".maps");

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define IPPROTO_UDP 17

static __attribute__((always_inline)) __u16 bswap16(__u16 x)
{
	return (__u16)((x << 8) | (x >> 8));
}

/* Non-zero when `dport` (network order) is one of the configured tunnel ports. */
static __attribute__((always_inline)) int tunnel_udp(const struct xvs_config *cfg, __u16 dport)
{
	return dport && (dport == cfg->tunnel_port || dport == cfg->tunnel_port2);
}

/* Non-zero when the frame is one xvs must process (FILTER mode). */
static __attribute__((always_inline)) int wanted(struct xdp_md *ctx, const struct xvs_config *cfg)
{
	__u8 *data = (__u8 *)(unsigned long)ctx->data;
	__u8 *end = (__u8 *)(unsigned long)ctx->data_end;
	__u8 *l3 = data + 14;
	__u16 proto;

	if (l3 > end)
		return 0;
	proto = bswap16(*(__u16 *)(data + 12));
	if (proto == ETH_P_8021Q) {
		if (l3 + 4 > end)
			return 0;
		proto = bswap16(*(__u16 *)(l3 + 2));
		l3 += 4;
	}
	if (proto == ETH_P_IP) {
		__u8 ihl;
		__u32 daddr;
		__u8 *l4;
		if (l3 + 20 > end)
			return 0;
		daddr = *(__u32 *)(l3 + 16);
		if (cfg->pod_mask4 && (daddr & cfg->pod_mask4) == cfg->pod_net4)
			return 1;
		if (l3[9] != IPPROTO_UDP)
			return 0;
		ihl = (l3[0] & 0x0f) * 4;
		if (ihl < 20)
			return 0;
		l4 = l3 + ihl;
		if (l4 + 8 > end)
			return 0;
		return tunnel_udp(cfg, *(__u16 *)(l4 + 2));
	}
	if (proto == ETH_P_IPV6) {
		__u8 *l4 = l3 + 40;
		if (l4 + 8 > end)
			return 0;
		if (l3[6] != IPPROTO_UDP)
			return 0;
		return tunnel_udp(cfg, *(__u16 *)(l4 + 2));
	}
	return 0;
}

SEC("xdp")
int xvs_redirect(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct xvs_config *cfg = bpf_map_lookup_elem(&xvs_config, &zero);

	if (cfg) {
		if (cfg->mode == XVS_MODE_PASS_ALL)
			return XDP_PASS;
		if (cfg->mode == XVS_MODE_FILTER && !wanted(ctx, cfg))
			return XDP_PASS;
	}
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

/* A GPL-compatible marker for the kernel, matching the dual licence above. */
char _license[] SEC("license") = "Dual BSD/GPL";
