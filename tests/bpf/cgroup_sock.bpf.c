// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: cgroup programs. cgroup/sock_create reports each socket
 * created in the run's cgroup (family, type, protocol); cgroup/connect4
 * reports IPv4 connects (port); cgroup_skb/egress counts nothing, it only
 * has to attach. All allow what they see.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	/* 1: sock_create, 2: connect4 */
	__u32 hook;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 port;
};

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

static __always_inline struct event *new_event(__u32 hook)
{
	struct event *ev = gadget_reserve_buf(print_events, sizeof(*ev));

	if (ev) {
		__builtin_memset(ev, 0, sizeof(*ev));
		ev->pid = bpf_get_current_pid_tgid() >> 32;
		ev->hook = hook;
	}
	return ev;
}

SEC("cgroup/sock_create")
int cg_sock_create(struct bpf_sock *sk)
{
	struct event *ev = new_event(1);

	if (ev) {
		ev->family = sk->family;
		ev->type = sk->type;
		ev->protocol = sk->protocol;
		gadget_submit_buf(NULL, print_events, ev, sizeof(*ev));
	}
	return 1;
}

SEC("cgroup/connect4")
int cg_connect4(struct bpf_sock_addr *ctx)
{
	struct event *ev = new_event(2);

	if (ev) {
		ev->family = ctx->user_family;
		ev->port = bpf_ntohs(ctx->user_port);
		gadget_submit_buf(NULL, print_events, ev, sizeof(*ev));
	}
	return 1;
}

SEC("cgroup_skb/egress")
int cg_skb_egress(struct __sk_buff *skb)
{
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
