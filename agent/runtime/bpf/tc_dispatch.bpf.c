// SPDX-License-Identifier: GPL-2.0
/*
 * gadgetd's tc dispatcher: the classifier the agent attaches to an
 * interface in place of a gadget's own tc program.
 *
 * Like the socket-filter dispatcher (net_dispatch.bpf.c), it writes the
 * inode of the network namespace the packets are counted to into
 * skb->cb[0], where <gadget/sockets-map.h> reads it from, then tail-calls
 * the gadget's program, which the agent put in slot 0 of
 * gadget_tc_dispatch_target; the gadget's return value is the verdict.
 * Should the slot be empty, the dispatcher returns TC_ACT_UNSPEC (-1), as
 * Inspektor Gadget's does: tc's default action, and with tcx links "the
 * next program decides".
 *
 * One instance per (interface, gadget program); the agent sets
 * gadget_tc_dispatch_netns before loading (src/tc_dispatch.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#define GADGET_TC_ACT_UNSPEC (-1)

/* The inode of the network namespace this instance's packets are counted to. */
const volatile __u32 gadget_tc_dispatch_netns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gadget_tc_dispatch_target SEC(".maps");

SEC("classifier")
int gadget_tc_dispatch(struct __sk_buff *skb)
{
	skb->cb[0] = gadget_tc_dispatch_netns;
	bpf_tail_call(skb, &gadget_tc_dispatch_target, 0);
	return GADGET_TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "GPL";
