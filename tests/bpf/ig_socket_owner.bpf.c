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

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct event_t {
	gadget_netns_id netns_id;
	struct gadget_process proc;
	__u8 prog;
	__u8 version;
	__u8 l4proto;
	__u16 sport;
	__u16 dport;
};

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(packets, events, event_t);

/* Only packets to or from this port range are reported (the test's). */
const volatile __u16 port_min = 40900;
const volatile __u16 port_max = 40999;
GADGET_PARAM(port_min);
GADGET_PARAM(port_max);

static __always_inline int report(struct __sk_buff *skb, __u8 prog)
{
	struct event_t *event;
	__u16 h_proto, sport, dport;
	__u8 l4proto, ihl;
	int l4;

	if (bpf_skb_load_bytes(skb, 12, &h_proto, 2) < 0)
		return 0;
	if (h_proto == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) < 0 ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + 9, &l4proto, 1) < 0)
			return 0;
		l4 = ETH_HLEN + (ihl & 0x0f) * 4;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &l4proto, 1) < 0)
			return 0;
		l4 = ETH_HLEN + 40;
	} else {
		return 0;
	}
	if (l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, l4, &sport, 2) < 0 ||
	    bpf_skb_load_bytes(skb, l4 + 2, &dport, 2) < 0)
		return 0;
	sport = bpf_ntohs(sport);
	dport = bpf_ntohs(dport);
	if ((sport < port_min || sport > port_max) && (dport < port_min || dport > port_max))
		return 0;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(event, 0, sizeof(*event));
	event->netns_id = skb->cb[0]; // cb[0] initialized by the dispatcher
	event->prog = prog;
	event->version = h_proto == bpf_htons(ETH_P_IP) ? 4 : 6;
	event->l4proto = l4proto;
	event->sport = sport;
	event->dport = dport;
	struct gadget_socket_value *skb_val = gadget_socket_lookup(skb);
	if (skb_val != NULL)
		gadget_process_populate_from_socket(skb_val, &event->proc);
	gadget_submit_buf(skb, &events, event, sizeof(*event));
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
