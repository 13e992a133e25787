// SPDX-License-Identifier: GPL-2.0
/* trace_tcp: TCP state changes (connect, accept, close), from sock:inet_sock_set_state. */
/* arm64's vmlinux.h has an unrelated enumerator CLOSE (enum fsl_mc_cmd_index):
 * renamed while it is included, so the state names below can be the usual ones. */
#define CLOSE vmlinux_CLOSE
#include <vmlinux/vmlinux.h>
#undef CLOSE
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

#define AF_INET 2
#define IPPROTO_TCP 6

enum tcp_state_t {
	ESTABLISHED = 1, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT,
	CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV,
};

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_mntns_id mntns_id;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum tcp_state_t oldstate;
	enum tcp_state_t newstate;
	__u8 comm[TASK_COMM_LEN];
};

/* Only this (local) port, either side (0: all). */
GADGET_PARAM(__u16, targ_port, 0);

GADGET_TRACER_MAP(print_events, event, 1024 * 1024);

SEC("tracepoint/sock/inet_sock_set_state")
int trace_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	gadget_mntns_id mntns_id = gadget_get_mntns_id();
	struct event *event;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (targ_port && targ_port != ctx->sport && targ_port != ctx->dport)
		return 0;
	if (gadget_should_discard_mntns_id(mntns_id))
		return 0;
	event = gadget_reserve_buf(&print_events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(&event->src, 0, sizeof(event->src));
	__builtin_memset(&event->dst, 0, sizeof(event->dst));
	event->timestamp = bpf_ktime_get_boot_ns();
	/* In softirq context this is whatever task was running. */
	event->pid = bpf_get_current_pid_tgid() >> 32;
	event->mntns_id = mntns_id;
	event->src.port = ctx->sport;
	event->dst.port = ctx->dport;
	event->src.proto_raw = event->dst.proto_raw = IPPROTO_TCP;
	if (ctx->family == AF_INET) {
		event->src.version = event->dst.version = 4;
		/* ctx pointers cannot be offset: copy with a helper. */
		bpf_probe_read_kernel(&event->src.addr_raw.v4, 4, ctx->saddr);
		bpf_probe_read_kernel(&event->dst.addr_raw.v4, 4, ctx->daddr);
	} else {
		event->src.version = event->dst.version = 6;
		bpf_probe_read_kernel(event->src.addr_raw.v6, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(event->dst.addr_raw.v6, 16, ctx->daddr_v6);
	}
	event->oldstate = ctx->oldstate;
	event->newstate = ctx->newstate;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	gadget_submit_buf(ctx, &print_events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
