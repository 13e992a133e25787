// SPDX-License-Identifier: GPL-2.0
/*
 * trace_tcp: TCP state changes (connect, accept, close), from the
 * sock:inet_sock_set_state tracepoint (no kprobes needed). One data source,
 * `tcp`. Transitions made in softirq context (the server side of a
 * handshake) carry whatever task was running: filter those by port.
 */
/* arm64's vmlinux.h has an unrelated enumerator CLOSE (enum fsl_mc_cmd_index):
 * renamed while it is included, so the state names below can be the usual ones. */
#define CLOSE vmlinux_CLOSE
#include <vmlinux.h>
#undef CLOSE
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define AF_INET 2
#define IPPROTO_TCP 6

enum tcp_state {
	ESTABLISHED = 1, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT,
	CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;

	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum tcp_state oldstate;
	enum tcp_state newstate;
};

/* Only this port, either side (--port; 0: all). */
const volatile __u16 targ_port = 0;
GADGET_PARAM(targ_port);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(tcp, events, event);

SEC("tracepoint/sock/inet_sock_set_state")
int ig_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct event *event;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (targ_port && targ_port != ctx->sport && targ_port != ctx->dport)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(&event->src, 0, sizeof(event->src));
	__builtin_memset(&event->dst, 0, sizeof(event->dst));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	/* In softirq context this is whatever task was running. */
	gadget_process_populate(&event->proc);
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
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
