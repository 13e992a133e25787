// SPDX-License-Identifier: GPL-2.0
/*
 * trace_tcpretrans: TCP retransmissions, from the tcp:tcp_retransmit_skb
 * tracepoint (no kprobes needed). One data source, `tcpretrans`. It runs in
 * timer context, so no process is known: the socket says where (its network
 * namespace), and the process filters (--pid, --comm, ...) drop every event.
 */
/* arm64's vmlinux.h has an unrelated enumerator CLOSE (enum fsl_mc_cmd_index):
 * renamed while it is included, so the state names below can be the usual ones. */
#define CLOSE vmlinux_CLOSE
#include <vmlinux.h>
#undef CLOSE
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>
/* The process that owns the socket (socket enricher). */
#define GADGET_TYPE_TRACING
#include <gadget/sockets-map.h>

#define AF_INET 2
#define IPPROTO_TCP 6

enum tcp_state {
	ESTABLISHED = 1, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT,
	CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV,
};

/* The tcp:tcp_retransmit_skb record as Linux 6.x lays it out. Declared here
 * because older kernels' headers name it differently (tcp_event_sk_skb). */
struct tcp_retransmit_args {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct event {
	gadget_timestamp timestamp_raw;
	gadget_netns_id netns_id;

	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst;
	enum tcp_state state;
	__u32 retransmits;
	struct gadget_process proc;
};

/* Only this port, either side (--port; 0: all). */
const volatile __u16 targ_port = 0;
GADGET_PARAM(targ_port);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(tcpretrans, events, event);

SEC("tracepoint/tcp/tcp_retransmit_skb")
int ig_tcpretrans(struct tcp_retransmit_args *ctx)
{
	const struct sock *sk = ctx->skaddr;
	struct event *event;

	if (targ_port && targ_port != ctx->sport && targ_port != ctx->dport)
		return 0;
	if (gadget_should_discard_unattributed())
		return 0;
	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	__builtin_memset(&event->src, 0, sizeof(event->src));
	__builtin_memset(&event->dst, 0, sizeof(event->dst));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	/* Timer context: the socket, not the current task, says where. */
	event->netns_id = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	event->retransmits = BPF_CORE_READ((struct inet_connection_sock *)sk, icsk_retransmits);
	event->src.port = ctx->sport;
	event->dst.port = ctx->dport;
	event->src.proto_raw = event->dst.proto_raw = IPPROTO_TCP;
	if (ctx->family == AF_INET) {
		event->src.version = event->dst.version = 4;
		bpf_probe_read_kernel(&event->src.addr_raw.v4, 4, ctx->saddr);
		bpf_probe_read_kernel(&event->dst.addr_raw.v4, 4, ctx->daddr);
	} else {
		event->src.version = event->dst.version = 6;
		bpf_probe_read_kernel(event->src.addr_raw.v6, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(event->dst.addr_raw.v6, 16, ctx->daddr_v6);
	}
	event->state = ctx->state;
	__builtin_memset(&event->proc, 0, sizeof(event->proc));
	gadget_process_populate_from_socket(gadget_socket_lookup(sk, event->netns_id), &event->proc);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
