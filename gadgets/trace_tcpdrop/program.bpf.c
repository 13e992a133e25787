// SPDX-License-Identifier: GPL-2.0
/*
 * trace_tcpdrop: TCP packets the kernel drops, with the reason, from the
 * skb:kfree_skb tracepoint (no kprobes needed). One data source, `tcpdrop`.
 * Packets are often freed in softirq context, so `proc` is the owner of the
 * packet's socket (socket enricher), empty when no socket took it.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>
/* The process that owns the socket (socket enricher). */
#define GADGET_TYPE_TRACING
#include <gadget/sockets-map.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6

/* Kernels from 6.x; the flavor suffix lets CO-RE match the kernel's enum. */
enum skb_drop_reason___new { SKB_CONSUMED___new = 1 };

/* TCP header flags, printed as SYN|ACK. */
enum tcp_flags_t { FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16, URG = 32, ECE = 64, CWR = 128 };

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;
	struct gadget_process proc;

	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	/* The kernel's own enum (from vmlinux.h): printed by name. */
	enum skb_drop_reason reason;
	enum tcp_flags_t tcpflags;
};

/* Only this port, either side (--port; 0: all). */
const volatile __u16 targ_port = 0;
GADGET_PARAM(targ_port);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(tcpdrop, events, event);

SEC("tracepoint/skb/kfree_skb")
int ig_tcpdrop(struct trace_event_raw_kfree_skb *ctx)
{
	struct sk_buff *skb = ctx->skbaddr;
	struct sock *sk;
	unsigned char *head;
	__u16 network, transport, sport, dport;
	struct tcphdr th = {};
	struct event *event;
	__u8 proto = 0, flags;
	int reason = ctx->reason;

	/* Freed after normal processing is not a drop. SKB_CONSUMED appeared in
	 * 6.x: ask the running kernel (CO-RE) instead of trusting vmlinux.h. */
	if (reason == SKB_NOT_DROPPED_YET)
		return 0;
	if (bpf_core_enum_value_exists(enum skb_drop_reason___new, SKB_CONSUMED___new) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason___new, SKB_CONSUMED___new))
		return 0;
	/* The tracepoint stores the protocol in host order. */
	if (ctx->protocol != ETH_P_IP && ctx->protocol != ETH_P_IPV6)
		return 0;
	head = BPF_CORE_READ(skb, head);
	network = BPF_CORE_READ(skb, network_header);
	transport = BPF_CORE_READ(skb, transport_header);
	if (ctx->protocol == ETH_P_IP)
		bpf_probe_read_kernel(&proto, 1, head + network + offsetof(struct iphdr, protocol));
	else
		bpf_probe_read_kernel(&proto, 1, head + network + offsetof(struct ipv6hdr, nexthdr));
	if (proto != IPPROTO_TCP || transport == (__u16)~0U)
		return 0;
	if (bpf_probe_read_kernel(&th, sizeof(th), head + transport))
		return 0;
	sport = bpf_ntohs(th.source);
	dport = bpf_ntohs(th.dest);
	if (targ_port && targ_port != sport && targ_port != dport)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(&event->src, 0, sizeof(event->src));
	__builtin_memset(&event->dst, 0, sizeof(event->dst));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	event->netns_id = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	event->src.port = sport;
	event->dst.port = dport;
	event->src.proto_raw = event->dst.proto_raw = IPPROTO_TCP;
	if (ctx->protocol == ETH_P_IP) {
		event->src.version = event->dst.version = 4;
		bpf_probe_read_kernel(&event->src.addr_raw.v4, 4, head + network + offsetof(struct iphdr, saddr));
		bpf_probe_read_kernel(&event->dst.addr_raw.v4, 4, head + network + offsetof(struct iphdr, daddr));
	} else {
		event->src.version = event->dst.version = 6;
		bpf_probe_read_kernel(event->src.addr_raw.v6, 16, head + network + offsetof(struct ipv6hdr, saddr));
		bpf_probe_read_kernel(event->dst.addr_raw.v6, 16, head + network + offsetof(struct ipv6hdr, daddr));
	}
	event->reason = reason;
	/* The flags byte follows the 12-byte ports/seq/ack and the data offset byte. */
	flags = ((__u8 *)&th)[13];
	event->tcpflags = flags;
	__builtin_memset(&event->proc, 0, sizeof(event->proc));
	sk = BPF_CORE_READ(skb, sk);
	if (sk)
		gadget_process_populate_from_socket(gadget_socket_lookup(sk, event->netns_id), &event->proc);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
