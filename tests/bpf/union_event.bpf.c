// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: unions in an event. Which member is live is unknown, so
 * every member is decoded from the same bytes: a named union (`u.a`,
 * `u.b`), an anonymous one (its members join the event's), and a union
 * holding a struct (`w.bytes.lo`). Reported on getcwd(2) by targ_pid.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	union {
		__u32 a;
		float b;
	} u;
	union {
		__u16 half[2];
		__u32 whole;
	};
	union {
		struct {
			__u8 lo;
			__u8 hi;
		} bytes;
		__u16 word;
	} w;
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 4096);

SEC("tracepoint/syscalls/sys_enter_getcwd")
int union_event(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *ev;

	if (pid != targ_pid)
		return 0;
	ev = gadget_reserve_buf(&print_events, sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->u.a = 0x3fc00000; /* 1.5f */
	ev->whole = 0x12345678;
	ev->w.word = 0x0201;
	gadget_submit_buf(NULL, &print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
