/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the IG-style network test gadgets (ig_socket_owner, ig_tc_owner;
 * tests/tests/net_dispatch.rs) share: reading a frame's TCP or UDP ports,
 * and an event with the packet's namespace (skb->cb[0], which only the
 * agent's dispatchers set), its owner and its ports. Include after
 * <gadget/sockets-map.h> and <gadget/buffer.h>.
 */
#ifndef TESTS_OWNER_PACKET_H
#define TESTS_OWNER_PACKET_H

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* A frame's IP version, L4 protocol and ports (host order). */
struct l4_packet {
	__u8 version;
	__u8 l4proto;
	__u16 sport;
	__u16 dport;
};

/*
 * Reads an Ethernet frame's TCP or UDP ports over IPv4 (and IPv6 when
 * `ipv6`) into `p`; false for any other frame, and for ports both outside
 * [port_min, port_max].
 */
static __always_inline bool l4_packet_read(struct __sk_buff *skb, bool ipv6, __u16 port_min,
					   __u16 port_max, struct l4_packet *p)
{
	__u16 h_proto;
	__u8 ihl;
	int l4;

	if (bpf_skb_load_bytes(skb, 12, &h_proto, 2) < 0)
		return false;
	if (h_proto == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) < 0 ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + 9, &p->l4proto, 1) < 0)
			return false;
		p->version = 4;
		l4 = ETH_HLEN + (ihl & 0x0f) * 4;
	} else if (ipv6 && h_proto == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &p->l4proto, 1) < 0)
			return false;
		p->version = 6;
		l4 = ETH_HLEN + 40;
	} else {
		return false;
	}
	if (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP)
		return false;
	if (bpf_skb_load_bytes(skb, l4, &p->sport, 2) < 0 ||
	    bpf_skb_load_bytes(skb, l4 + 2, &p->dport, 2) < 0)
		return false;
	p->sport = bpf_ntohs(p->sport);
	p->dport = bpf_ntohs(p->dport);
	return !((p->sport < port_min || p->sport > port_max) &&
		 (p->dport < port_min || p->dport > port_max));
}

/* `struct event_t`: namespace and owner, the gadget's own `fields`, then the ports. */
#define OWNER_EVENT(fields)                      \
	struct event_t {                         \
		gadget_netns_id netns_id;        \
		struct gadget_process proc;      \
		fields                           \
		__u8 l4proto;                    \
		__u16 sport;                     \
		__u16 dport;                     \
	}

/*
 * Reserves an event_t in ring `events` for packet `p` (zeroed, namespace
 * from cb[0], owner from socket value `owner` when not NULL), runs `fill`
 * (statements on `event`, for the gadget's own fields) and submits it.
 */
#define OWNER_EVENT_SUBMIT(skb, events, p, owner, fill)                                \
	do {                                                                           \
		struct gadget_socket_value *__owner = (owner);                         \
		struct event_t *event = gadget_reserve_buf(&events, sizeof(*event));   \
		if (!event)                                                            \
			break;                                                         \
		__builtin_memset(event, 0, sizeof(*event));                            \
		event->netns_id = (skb)->cb[0];                                        \
		event->l4proto = (p)->l4proto;                                         \
		event->sport = (p)->sport;                                             \
		event->dport = (p)->dport;                                             \
		fill;                                                                  \
		if (__owner)                                                           \
			gadget_process_populate_from_socket(__owner, &event->proc);    \
		gadget_submit_buf(skb, &events, event, sizeof(*event));                \
	} while (0)

#endif /* TESTS_OWNER_PACKET_H */
