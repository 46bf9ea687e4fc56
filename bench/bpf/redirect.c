/*
 * The "xdp" peer: redirects every frame received on the attached port straight out of
 * OUT_IFINDEX (set by the loader). One instance per direction (pa0 -> pb0, pb0 -> pa0).
 * This is the kernel's limit on the topology: no copy to userspace, no skb.
 */
#include "common.h"

volatile const __u32 OUT_IFINDEX = 0;

SEC("xdp")
int xdp_redirect(struct xdp_md *ctx)
{
	return bpf_redirect(OUT_IFINDEX, 0);
}

char _license[] SEC("license") = "Dual BSD/GPL";
