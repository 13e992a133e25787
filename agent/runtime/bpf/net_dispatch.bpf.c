// SPDX-License-Identifier: GPL-2.0
/*
 * gadgetd's network dispatcher: the socket filter the agent attaches to a
 * packet socket of one network namespace in place of a gadget's own
 * socket-filter program.
 *
 * It writes the inode of that namespace into skb->cb[0], where
 * <gadget/sockets-map.h> (ours and Inspektor Gadget's) reads the namespace
 * of a packet from, then tail-calls the gadget's program, which the agent
 * put in slot 0 of gadget_dispatch_target. The gadget's return value is the
 * filter's verdict. Should the slot be empty (the gadget's run is ending),
 * the packet is not passed to the socket: nobody reads it anyway.
 *
 * One instance per (namespace, gadget program); the agent sets
 * gadget_dispatch_netns before loading (src/net_dispatch.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

/* The inode of the network namespace this instance's socket is in. */
const volatile __u32 gadget_dispatch_netns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gadget_dispatch_target SEC(".maps");

SEC("socket")
int gadget_dispatch(struct __sk_buff *skb)
{
	skb->cb[0] = gadget_dispatch_netns;
	bpf_tail_call(skb, &gadget_dispatch_target, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
