// SPDX-License-Identifier: GPL-2.0
/*
 * A network gadget written the way Inspektor Gadget's are (trace_dns,
 * advise_networkpolicy): socket filters that take the packet's network
 * namespace from skb->cb[0], which only the agent's dispatcher sets, and
 * look the owner of the local socket up with gadget_socket_lookup(skb).
 * Two programs, each tagging its events, so the test sees that every
 * socket filter of an object is dispatched. IPv4 and IPv6, UDP and TCP.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GADGET_TYPE_NETWORKING
#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/sockets-map.h>

#include "owner_packet.h"

OWNER_EVENT(__u8 prog; __u8 version;);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(packets, events, event_t);

/* Only packets to or from this port range are reported (the test's). */
const volatile __u16 port_min = 40900;
const volatile __u16 port_max = 40999;
GADGET_PARAM(port_min);
GADGET_PARAM(port_max);

static __always_inline int report(struct __sk_buff *skb, __u8 prog)
{
	struct l4_packet p = {};

	if (!l4_packet_read(skb, true, port_min, port_max, &p))
		return 0;
	OWNER_EVENT_SUBMIT(skb, events, &p, gadget_socket_lookup(skb), {
		event->prog = prog;
		event->version = p.version;
	});
	return 0;
}

SEC("socket1")
int ig_socket_owner(struct __sk_buff *skb)
{
	return report(skb, 1);
}

SEC("socket2")
int ig_socket_owner2(struct __sk_buff *skb)
{
	return report(skb, 2);
}

char _license[] SEC("license") = "GPL";
