// SPDX-License-Identifier: GPL-2.0
/*
 * top_tcp: TCP bytes sent and received per process and connection, from the
 * sock:sock_{send,recv}_length tracepoints (no kprobes needed). One data
 * source, `connections`: a map iterator, read and cleared every interval.
 * Rows are per process (threads are summed), so the key has no tid.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

/* The sock:sock_{send,recv}_length tracepoint record (Linux 6.3+). Declared
 * here, not taken from vmlinux.h, so the gadget also builds for kernels whose
 * headers lack it (it then fails to attach there, saying so). */
struct sock_msg_length_args {
	__u64 common;
	void *sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
};

/* The key: which process, which connection. */
struct conn_key {
	gadget_pid pid;
	gadget_mntns_id mntns_id;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	gadget_comm comm[TASK_COMM_LEN];
};

/* The value: bytes this interval. */
struct conn_bytes {
	__u64 sent;
	__u64 received;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct conn_key);
	__type(value, struct conn_bytes);
} stats SEC(".maps");

GADGET_MAPITER(connections, stats);

static __always_inline int count(struct sock_msg_length_args *ctx, const bool send)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sock *sk = ctx->sk;
	struct conn_key key;
	struct conn_bytes zero = {}, *bytes;
	__u16 family = ctx->family;
	int len = ctx->ret;

	if (ctx->protocol != IPPROTO_TCP || len <= 0 || (ctx->flags & MSG_PEEK))
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	__builtin_memset(&key, 0, sizeof(key));
	key.mntns_id = gadget_get_current_mntns_id();
	key.pid = pid_tgid >> 32;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	key.src.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	key.dst.port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	key.src.proto_raw = key.dst.proto_raw = IPPROTO_TCP;
	if (family == AF_INET) {
		key.src.version = key.dst.version = 4;
		key.src.addr_raw.v4 = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		key.dst.addr_raw.v4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
	} else if (family == AF_INET6) {
		key.src.version = key.dst.version = 6;
		BPF_CORE_READ_INTO(&key.src.addr_raw.v6, sk,
				   __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&key.dst.addr_raw.v6, sk,
				   __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return 0;
	}
	bytes = bpf_map_lookup_elem(&stats, &key);
	if (!bytes) {
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		bytes = bpf_map_lookup_elem(&stats, &key);
		if (!bytes)
			return 0;
	}
	if (send)
		__sync_fetch_and_add(&bytes->sent, len);
	else
		__sync_fetch_and_add(&bytes->received, len);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int ig_toptcp_send(struct sock_msg_length_args *ctx)
{
	return count(ctx, true);
}

SEC("tracepoint/sock/sock_recv_length")
int ig_toptcp_recv(struct sock_msg_length_args *ctx)
{
	return count(ctx, false);
}

char LICENSE[] SEC("license") = "GPL";
