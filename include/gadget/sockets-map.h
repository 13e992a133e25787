/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The owners of sockets: a socket enricher records, per (network namespace,
 * family, protocol, local port), the process that owns the socket in the
 * map gadget_sockets, so that packet and socket gadgets can say which
 * process an event belongs to. gadgetd's enricher (docs/enrichment.md)
 * fills it; a gadget's gadget_sockets is the enricher's map, and its CO-RE
 * accesses to struct gadget_socket_value resolve against the enricher's
 * layout (the optional cwd and exepath are absent: check them with
 * bpf_core_field_exists()).
 *
 * Include <vmlinux.h> (tracing) or <linux/types.h> (networking) first, and
 * define GADGET_TYPE_NETWORKING or GADGET_TYPE_TRACING for the lookup wanted.
 */
#ifndef __GADGET_SOCKETS_MAP_H
#define __GADGET_SOCKETS_MAP_H

#if !defined(__VMLINUX_H__) && !defined(_LINUX_TYPES_H)
#error "include <linux/types.h> or <vmlinux.h> before <gadget/sockets-map.h>"
#endif

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <gadget/types.h>

/* Constants of the headers this file may not include (namespaced GADGET_SE_). */
#define GADGET_SE_PACKET_HOST 0
#define GADGET_SE_ETH_HLEN 14
#define GADGET_SE_ETH_P_IP 0x0800
#define GADGET_SE_ETH_P_IPV6 0x86DD
#define GADGET_SE_AF_INET 2
#define GADGET_SE_AF_INET6 10
#define GADGET_SE_IPV6_HLEN 40
#define GADGET_SE_IPV6_NEXTHDR_OFFSET 6
#define GADGET_SE_TCPHDR_DEST_OFFSET 2
#define GADGET_SE_TCPHDR_SOURCE_OFFSET 0
#define GADGET_SE_UDPHDR_DEST_OFFSET 2
#define GADGET_SE_UDPHDR_SOURCE_OFFSET 0
#define GADGET_SE_NEXTHDR_HOP 0
#define GADGET_SE_NEXTHDR_TCP 6
#define GADGET_SE_NEXTHDR_UDP 17
#define GADGET_SE_NEXTHDR_ROUTING 43
#define GADGET_SE_NEXTHDR_FRAGMENT 44
#define GADGET_SE_NEXTHDR_AUTH 51
#define GADGET_SE_NEXTHDR_NONE 59
#define GADGET_SE_NEXTHDR_DEST 60

/* 12 bytes: the same layout as Inspektor Gadget's key. */
struct gadget_socket_key {
	__u32 netns;
	__u16 family;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port; /* local port, host byte order */
};

#define GADGET_MAX_SOCKETS 16384

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GADGET_MAX_SOCKETS);
	__type(key, struct gadget_socket_key);
	__type(value, struct gadget_socket_value);
} gadget_sockets SEC(".maps");

#ifdef GADGET_TYPE_NETWORKING
/* The offset of the L4 header of an IPv6 packet, skipping extension headers; 0 if none. */
static __always_inline int __gadget_se_ipv6_l4(const struct __sk_buff *skb, __u8 *proto)
{
	int off = GADGET_SE_ETH_HLEN + GADGET_SE_IPV6_HLEN;

	for (int i = 0; i < 6; i++) {
		__u8 next, len;

		if (*proto == GADGET_SE_NEXTHDR_TCP || *proto == GADGET_SE_NEXTHDR_UDP)
			return off;
		if (bpf_skb_load_bytes(skb, off, &next, 1) < 0)
			return 0;
		switch (*proto) {
		case GADGET_SE_NEXTHDR_FRAGMENT:
			off += 8;
			break;
		case GADGET_SE_NEXTHDR_AUTH:
			if (bpf_skb_load_bytes(skb, off + 1, &len, 1) < 0)
				return 0;
			off += 4 * (len + 2);
			break;
		case GADGET_SE_NEXTHDR_HOP:
		case GADGET_SE_NEXTHDR_ROUTING:
		case GADGET_SE_NEXTHDR_DEST:
			if (bpf_skb_load_bytes(skb, off + 1, &len, 1) < 0)
				return 0;
			off += 8 * (len + 1);
			break;
		default:
			return 0;
		}
		*proto = next;
	}
	return (*proto == GADGET_SE_NEXTHDR_TCP || *proto == GADGET_SE_NEXTHDR_UDP) ? off : 0;
}

/*
 * The owner of the local socket of a packet, given its direction (TC
 * programs cannot trust skb->pkt_type). The network namespace is taken from
 * skb->cb[0]. NULL when unknown.
 */
static __always_inline struct gadget_socket_value *
gadget_socket_lookup_with_direction(const struct __sk_buff *skb, __u8 is_ingress)
{
	struct gadget_socket_key key = {};
	struct gadget_socket_value *owner;
	__u16 h_proto;
	__u8 first;
	int l4;

	key.netns = skb->cb[0];
	if (bpf_skb_load_bytes(skb, 12, &h_proto, sizeof(h_proto)) < 0)
		return 0;
	if (h_proto == bpf_htons(GADGET_SE_ETH_P_IP)) {
		key.family = GADGET_SE_AF_INET;
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN + 9, &key.proto, 1) < 0 ||
		    bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN, &first, 1) < 0)
			return 0;
		l4 = GADGET_SE_ETH_HLEN + (first & 0x0f) * 4; /* IHL: 32-bit words */
	} else if (h_proto == bpf_htons(GADGET_SE_ETH_P_IPV6)) {
		key.family = GADGET_SE_AF_INET6;
		if (bpf_skb_load_bytes(skb, GADGET_SE_ETH_HLEN + GADGET_SE_IPV6_NEXTHDR_OFFSET,
				       &key.proto, 1) < 0)
			return 0;
		l4 = __gadget_se_ipv6_l4(skb, &key.proto);
		if (!l4)
			return 0;
	} else {
		return 0;
	}
	if (key.proto != GADGET_SE_NEXTHDR_TCP && key.proto != GADGET_SE_NEXTHDR_UDP)
		return 0;
	/* TCP and UDP both have the source port at 0 and the destination at 2. */
	if (bpf_skb_load_bytes(skb, l4 + (is_ingress ? 2 : 0), &key.port, sizeof(key.port)) < 0)
		return 0;
	key.port = bpf_ntohs(key.port);

	owner = bpf_map_lookup_elem(&gadget_sockets, &key);
	if (owner || key.family != GADGET_SE_AF_INET)
		return owner;
	/* An IPv4 packet may belong to a dual-stack IPv6 socket. */
	key.family = GADGET_SE_AF_INET6;
	owner = bpf_map_lookup_elem(&gadget_sockets, &key);
	return owner && !owner->ipv6only ? owner : 0;
}

/* The owner of a packet's local socket, the direction from skb->pkt_type. */
static __always_inline struct gadget_socket_value *gadget_socket_lookup(const struct __sk_buff *skb)
{
	return gadget_socket_lookup_with_direction(skb, skb->pkt_type == GADGET_SE_PACKET_HOST);
}
#endif /* GADGET_TYPE_NETWORKING */

#ifdef GADGET_TYPE_TRACING
/* The owner of a kernel socket in network namespace `netns`; NULL when unknown. */
static __always_inline struct gadget_socket_value *gadget_socket_lookup(const struct sock *sk,
									__u32 netns)
{
	struct gadget_socket_key key = {};
	struct inet_sock *inet = (struct inet_sock *)sk;

	key.netns = netns;
	key.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	key.proto = BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
	if (key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP)
		return 0;
	BPF_CORE_READ_INTO(&key.port, inet, inet_sport);
	key.port = bpf_ntohs(key.port);
	return bpf_map_lookup_elem(&gadget_sockets, &key);
}
#endif /* GADGET_TYPE_TRACING */

/* Fills `p` from a socket's owner (no-op when `owner` is NULL). */
static __always_inline void gadget_process_populate_from_socket(
	const struct gadget_socket_value *owner, struct gadget_process *p)
{
	if (!owner)
		return;
	__builtin_memcpy(p->comm, owner->task, sizeof(p->comm));
	p->pid = owner->pid_tgid >> 32;
	p->tid = (__u32)owner->pid_tgid;
	p->mntns_id = owner->mntns;
	p->creds.uid = (__u32)owner->uid_gid;
	p->creds.gid = owner->uid_gid >> 32;
	__builtin_memcpy(p->parent.comm, owner->ptask, sizeof(p->parent.comm));
	p->parent.pid = owner->ppid;
	p->parent.tid = bpf_core_field_exists(owner->ptid) ? owner->ptid : 0;
}

#endif /* __GADGET_SOCKETS_MAP_H */
