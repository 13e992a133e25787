// SPDX-License-Identifier: GPL-2.0
/*
 * trace_sni: server names of TLS connections (ClientHello SNI), from a socket filter.
 * One data source, `sni`. Packets carry no process: the process filters
 * (--pid, --comm, ...) drop every packet, since none can be shown to match.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define GADGET_TYPE_NETWORKING
#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>
/* The process that owns the packet's local socket (socket enricher). */
#include <gadget/sockets-map.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define TLS_HANDSHAKE 0x16
#define TLS_CLIENT_HELLO 0x01
#define EXT_SERVER_NAME 0
#define MAX_EXTENSIONS 32
#define MAX_NAME 127

enum pkt_type_t { HOST = 0, BROADCAST, MULTICAST, OTHERHOST, OUTGOING };

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;
	enum pkt_type_t pkt_type;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	__u8 name[MAX_NAME + 1];
	struct gadget_process proc;
};

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(sni, events, event);

static __always_inline __u16 load16(struct __sk_buff *skb, __u32 off)
{
	__u16 v = 0;

	bpf_skb_load_bytes(skb, off, &v, 2);
	return bpf_ntohs(v);
}

static __always_inline __u8 load8(struct __sk_buff *skb, __u32 off)
{
	__u8 v = 0;

	bpf_skb_load_bytes(skb, off, &v, 1);
	return v;
}

SEC("socket")
int ig_sni(struct __sk_buff *skb)
{
	__u16 proto = load16(skb, 12), name_len = 0;
	__u32 l4, off, end, ext_end;
	__u8 l4proto;
	struct event *event;
	int i;

	if (gadget_should_discard_unattributed())
		return 0;
	if (proto == ETH_P_IP) {
		l4proto = load8(skb, ETH_HLEN + 9);
		l4 = ETH_HLEN + (load8(skb, ETH_HLEN) & 0xf) * 4;
	} else if (proto == ETH_P_IPV6) {
		l4proto = load8(skb, ETH_HLEN + 6);
		l4 = ETH_HLEN + 40;
	} else {
		return 0;
	}
	if (l4proto != IPPROTO_TCP)
		return 0;
	off = l4 + (load8(skb, l4 + 12) >> 4) * 4; /* TLS record */
	if (load8(skb, off) != TLS_HANDSHAKE || load8(skb, off + 5) != TLS_CLIENT_HELLO)
		return 0;
	off += 5 + 4 + 2 + 32;                   /* record, handshake header, version, random */
	off += 1 + load8(skb, off);              /* session id */
	off += 2 + load16(skb, off);             /* cipher suites */
	off += 1 + load8(skb, off);              /* compression methods */
	ext_end = off + 2 + load16(skb, off);
	off += 2;
	for (i = 0; i < MAX_EXTENSIONS && off + 4 <= ext_end; i++) {
		__u16 type = load16(skb, off), len = load16(skb, off + 2);

		if (type == EXT_SERVER_NAME) {
			/* list length (2), name type (1), name length (2), name */
			name_len = load16(skb, off + 7);
			off += 9;
			break;
		}
		off += 4 + len;
	}
	if (!name_len)
		return 0;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(&event->src, 0, sizeof(event->src));
	__builtin_memset(&event->dst, 0, sizeof(event->dst));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->netns_id = skb->cb[0]; /* set by the agent's dispatcher */
	event->pkt_type = skb->pkt_type;
	event->src.port = load16(skb, l4);
	event->dst.port = load16(skb, l4 + 2);
	event->src.proto_raw = event->dst.proto_raw = IPPROTO_TCP;
	if (proto == ETH_P_IP) {
		event->src.version = event->dst.version = 4;
		bpf_skb_load_bytes(skb, ETH_HLEN + 12, &event->src.addr_raw.v4, 4);
		bpf_skb_load_bytes(skb, ETH_HLEN + 16, &event->dst.addr_raw.v4, 4);
	} else {
		event->src.version = event->dst.version = 6;
		bpf_skb_load_bytes(skb, ETH_HLEN + 8, event->src.addr_raw.v6, 16);
		bpf_skb_load_bytes(skb, ETH_HLEN + 24, event->dst.addr_raw.v6, 16);
	}
	for (i = 0; i < MAX_NAME; i++) {
		if (i >= name_len || bpf_skb_load_bytes(skb, off + i, &event->name[i], 1))
			break;
	}
	event->name[i & MAX_NAME] = 0;
	/* sockets-map.h takes the namespace from cb[0] too. */
	__builtin_memset(&event->proc, 0, sizeof(event->proc));
	gadget_process_populate_from_socket(gadget_socket_lookup(skb), &event->proc);
	gadget_submit_buf(skb, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
