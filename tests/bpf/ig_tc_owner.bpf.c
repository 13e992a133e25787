// SPDX-License-Identifier: GPL-2.0
/*
 * A tc gadget written the way Inspektor Gadget's are (tcpdump): classifiers
 * that take the packet's network namespace from skb->cb[0], which only the
 * agent's tc dispatcher sets, and look the owner of the local socket up
 * with gadget_socket_lookup_with_direction(skb, is_ingress). One program
 * per direction, each tagging its events; UDP and TCP over IPv4.
 *
 * `reverse` is for the host side of a veth, where ingress packets leave
 * the container: the local socket (the container's) is then the source.
 * The programs return TC_ACT_OK: every packet goes on.
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
#define TC_ACT_OK 0

struct event_t {
	gadget_netns_id netns_id;
	struct gadget_process proc;
	__u8 ingress;
	__u8 l4proto;
	__u16 sport;
	__u16 dport;
};

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(packets, events, event_t);

/* Only packets to or from this port range are reported (the test's). */
const volatile __u16 port_min = 40920;
const volatile __u16 port_max = 40939;
const volatile bool reverse = false;
GADGET_PARAM(port_min);
GADGET_PARAM(port_max);
GADGET_PARAM(reverse);

static __always_inline int report(struct __sk_buff *skb, __u8 ingress)
{
	struct event_t *event;
	__u16 h_proto, sport, dport;
	__u8 l4proto, ihl;
	int l4;

	if (bpf_skb_load_bytes(skb, 12, &h_proto, 2) < 0 || h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 9, &l4proto, 1) < 0)
		return TC_ACT_OK;
	if (l4proto != IPPROTO_TCP && l4proto != IPPROTO_UDP)
		return TC_ACT_OK;
	l4 = ETH_HLEN + (ihl & 0x0f) * 4;
	if (bpf_skb_load_bytes(skb, l4, &sport, 2) < 0 ||
	    bpf_skb_load_bytes(skb, l4 + 2, &dport, 2) < 0)
		return TC_ACT_OK;
	sport = bpf_ntohs(sport);
	dport = bpf_ntohs(dport);
	if ((sport < port_min || sport > port_max) && (dport < port_min || dport > port_max))
		return TC_ACT_OK;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return TC_ACT_OK;
	__builtin_memset(event, 0, sizeof(*event));
	event->netns_id = skb->cb[0]; // cb[0] initialized by the dispatcher
	event->ingress = ingress;
	event->l4proto = l4proto;
	event->sport = sport;
	event->dport = dport;
	struct gadget_socket_value *skb_val =
		gadget_socket_lookup_with_direction(skb, reverse ? !ingress : ingress);
	if (skb_val != NULL)
		gadget_process_populate_from_socket(skb_val, &event->proc);
	gadget_submit_buf(skb, &events, event, sizeof(*event));
	return TC_ACT_OK;
}

SEC("classifier/ingress/owner")
int ig_tc_owner_ingress(struct __sk_buff *skb)
{
	return report(skb, 1);
}

SEC("classifier/egress/owner")
int ig_tc_owner_egress(struct __sk_buff *skb)
{
	return report(skb, 0);
}

char _license[] SEC("license") = "GPL";
