// SPDX-License-Identifier: GPL-2.0
/*
 * trace_dns: DNS queries and responses (UDP port 53), from a socket filter.
 * One data source, `dns`. Packets carry no process: the process filters
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
#define IPPROTO_UDP 17
#define DNS_PORT 53
#define MAX_NAME 255

enum pkt_type_t { HOST = 0, BROADCAST, MULTICAST, OTHERHOST, OUTGOING };
enum qr_t { QUERY = 0, RESPONSE = 1 };
enum rcode_t { NOERROR = 0, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED };
enum qtype_t { A = 1, NS = 2, CNAME = 5, SOA = 6, PTR = 12, MX = 15, TXT = 16, AAAA = 28, SRV = 33, HTTPS = 65, ANY = 255 };

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;
	enum pkt_type_t pkt_type;
	gadget_ifindex ifindex;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	__u16 id;
	enum qr_t qr;
	enum rcode_t rcode;
	enum qtype_t qtype;
	__u16 ancount;
	gadget_dnsname name[MAX_NAME + 1];
	struct gadget_process proc;
};

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(dns, events, event);

SEC("socket")
int ig_dns(struct __sk_buff *skb)
{
	__u16 proto, sport, dport, flags, qtype = 0, ancount;
	__u32 l4, dns;
	__u8 ihl, l4proto, byte;
	struct event *event;
	int i;

	if (gadget_should_discard_unattributed())
		return 0;
	if (bpf_skb_load_bytes(skb, 12, &proto, 2))
		return 0;
	proto = bpf_ntohs(proto);
	if (proto == ETH_P_IP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ihl, 1) || bpf_skb_load_bytes(skb, ETH_HLEN + 9, &l4proto, 1))
			return 0;
		l4 = ETH_HLEN + (ihl & 0xf) * 4;
	} else if (proto == ETH_P_IPV6) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &l4proto, 1))
			return 0;
		l4 = ETH_HLEN + 40; /* extension headers are not followed */
	} else {
		return 0;
	}
	if (l4proto != IPPROTO_UDP)
		return 0;
	if (bpf_skb_load_bytes(skb, l4, &sport, 2) || bpf_skb_load_bytes(skb, l4 + 2, &dport, 2))
		return 0;
	sport = bpf_ntohs(sport);
	dport = bpf_ntohs(dport);
	if (sport != DNS_PORT && dport != DNS_PORT)
		return 0;
	dns = l4 + 8;
	if (bpf_skb_load_bytes(skb, dns + 2, &flags, 2) || bpf_skb_load_bytes(skb, dns + 6, &ancount, 2))
		return 0;
	flags = bpf_ntohs(flags);

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(&event->src, 0, sizeof(event->src));
	__builtin_memset(&event->dst, 0, sizeof(event->dst));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->netns_id = skb->cb[0]; /* set by the agent's dispatcher */
	event->pkt_type = skb->pkt_type;
	event->ifindex = skb->ifindex;
	event->src.port = sport;
	event->dst.port = dport;
	event->src.proto_raw = event->dst.proto_raw = IPPROTO_UDP;
	if (proto == ETH_P_IP) {
		event->src.version = event->dst.version = 4;
		bpf_skb_load_bytes(skb, ETH_HLEN + 12, &event->src.addr_raw.v4, 4);
		bpf_skb_load_bytes(skb, ETH_HLEN + 16, &event->dst.addr_raw.v4, 4);
	} else {
		event->src.version = event->dst.version = 6;
		bpf_skb_load_bytes(skb, ETH_HLEN + 8, event->src.addr_raw.v6, 16);
		bpf_skb_load_bytes(skb, ETH_HLEN + 24, event->dst.addr_raw.v6, 16);
	}
	bpf_skb_load_bytes(skb, dns, &event->id, 2);
	event->id = bpf_ntohs(event->id);
	event->qr = flags >> 15;
	event->rcode = flags & 0xf;
	event->ancount = bpf_ntohs(ancount);
	/* The question name, in wire format (the agent prints it dotted). */
	event->name[0] = 0;
	for (i = 0; i < MAX_NAME; i++) {
		if (bpf_skb_load_bytes(skb, dns + 12 + i, &byte, 1))
			break;
		event->name[i] = byte;
		if (byte == 0)
			break;
	}
	event->name[MAX_NAME] = 0;
	if (i < MAX_NAME && !bpf_skb_load_bytes(skb, dns + 12 + i + 1, &qtype, 2))
		event->qtype = bpf_ntohs(qtype);
	else
		event->qtype = 0;
	/* sockets-map.h takes the namespace from cb[0] too. */
	__builtin_memset(&event->proc, 0, sizeof(event->proc));
	gadget_process_populate_from_socket(gadget_socket_lookup(skb), &event->proc);
	gadget_submit_buf(skb, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
