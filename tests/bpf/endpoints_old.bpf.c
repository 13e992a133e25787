// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: endpoints in Inspektor Gadget's older layout, where the L4
 * endpoint nests an L3 one (`l3 { addr, version, pad[3] }`, then `port`,
 * `proto`): the port is at byte 20, not 16. Decoded by member name, it prints
 * 127.0.0.1:8080, not 127.0.0.1:4 (the version byte read as the port).
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <gadget/buffer.h>

union gadget_ip_addr_t {
	__u8 v6[16];
	__u32 v4;
};

struct gadget_l3endpoint_t {
	union gadget_ip_addr_t addr;
	__u8 version;
	__u8 pad[3];
};

struct gadget_l4endpoint_t {
	struct gadget_l3endpoint_t l3;
	__u16 port;
	__u16 proto;
};

struct event {
	__u32 pid;
	struct gadget_l3endpoint_t host;
	struct gadget_l4endpoint_t src;
	struct gadget_l4endpoint_t dst6;
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

SEC("tracepoint/syscalls/sys_enter_getcwd")
int endpoints_getcwd(void *ctx)
{
	struct event *ev;

	if (targ_pid != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->pid = targ_pid;
	ev->host.addr.v4 = bpf_htonl(0x0a000001); /* 10.0.0.1 */
	ev->host.version = 4;
	ev->src.l3.addr.v4 = bpf_htonl(0x7f000001); /* 127.0.0.1 */
	ev->src.l3.version = 4;
	ev->src.port = 8080;
	ev->src.proto = 6;
	ev->dst6.l3.addr.v6[15] = 1; /* ::1 */
	ev->dst6.l3.version = 6;
	ev->dst6.port = 443;
	ev->dst6.proto = 17;
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
