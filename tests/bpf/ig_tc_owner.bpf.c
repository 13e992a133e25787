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

#include "owner_packet.h"

#define TC_ACT_OK 0

OWNER_EVENT(__u8 ingress;);

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
	struct l4_packet p = {};

	if (!l4_packet_read(skb, false, port_min, port_max, &p))
		return TC_ACT_OK;
	OWNER_EVENT_SUBMIT(skb, events, &p,
			   gadget_socket_lookup_with_direction(skb, reverse ? !ingress : ingress),
			   event->ingress = ingress);
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
