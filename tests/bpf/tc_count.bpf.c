// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: tc classifier programs in every section spelling gadgetd
 * accepts. Each reports the IPv4 UDP packets to port `targ_port` it sees
 * (which program, interface, length) and lets every packet through
 * (TC_ACT_UNSPEC: the next program sees it too, with tcx and netlink tc alike).
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <gadget/buffer.h>

#define TC_ACT_UNSPEC (-1)
#define ETH_P_IP 0x0800

struct event {
	/* 1: tc, 2: tc/egress, 3: tcx/ingress, 4: tcx/egress,
	 * 5: classifier/ingress/count, 6: classifier/egress/count, 7: classifier */
	__u32 source;
	__u32 ifindex;
	__u32 len;
	__u32 dport;
};

const volatile __u16 targ_port = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

static __always_inline int count(struct __sk_buff *skb, __u32 source)
{
	struct event *ev;
	__u8 ihl_byte, proto;
	__u16 dport;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, 14, &ihl_byte, 1) ||
	    bpf_skb_load_bytes(skb, 14 + 9, &proto, 1) || proto != 17)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, 14 + (ihl_byte & 0xf) * 4 + 2, &dport, 2) ||
	    bpf_ntohs(dport) != targ_port)
		return TC_ACT_UNSPEC;
	ev = gadget_reserve_buf(&print_events, sizeof(*ev));
	if (!ev)
		return TC_ACT_UNSPEC;
	ev->source = source;
	ev->ifindex = skb->ifindex;
	ev->len = skb->len;
	ev->dport = bpf_ntohs(dport);
	gadget_submit_buf(NULL, &print_events, ev, sizeof(*ev));
	return TC_ACT_UNSPEC;
}

SEC("tc")
int tc_plain(struct __sk_buff *skb) { return count(skb, 1); }

SEC("tc/egress")
int tc_egress(struct __sk_buff *skb) { return count(skb, 2); }

SEC("tcx/ingress")
int tcx_ingress(struct __sk_buff *skb) { return count(skb, 3); }

SEC("tcx/egress")
int tcx_egress(struct __sk_buff *skb) { return count(skb, 4); }

SEC("classifier/ingress/count")
int ig_ingress(struct __sk_buff *skb) { return count(skb, 5); }

SEC("classifier/egress/count")
int ig_egress(struct __sk_buff *skb) { return count(skb, 6); }

SEC("classifier")
int classifier_plain(struct __sk_buff *skb) { return count(skb, 7); }

char LICENSE[] SEC("license") = "GPL";
