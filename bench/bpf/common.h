/* Header-free definitions shared by the bench XDP programs: clang is the only build dependency. */
#ifndef XVS_BENCH_COMMON_H
#define XVS_BENCH_COMMON_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

/* The UAPI context of an XDP program (linux/bpf.h). */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP,
	XDP_PASS,
	XDP_TX,
	XDP_REDIRECT,
};

#define SEC(name) __attribute__((section(name), used))

/* Helper 23 (linux/bpf.h, enum bpf_func_id). */
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;

#define ETH_HLEN 14

#endif
