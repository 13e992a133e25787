// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget, Inspektor Gadget style: trailing data after the event struct
 * (gadget.yaml's `ebpf.rest.name` / `ebpf.rest.len`, as IG's tcpdump uses for
 * packet bytes). Each openat by `targ_pid` is one ring record: the struct,
 * then 64 bytes holding the file name read from user memory, of which
 * `name_len` are meaningful.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

#define TRAILING 64

struct event {
	__u32 pid;
	__u32 name_len;
};

struct record {
	struct event ev;
	char name[TRAILING];
};

const volatile pid_t targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 64 * 1024);
GADGET_TRACER(opens, events, event);

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_rest_openat(struct trace_event_raw_sys_enter *ctx)
{
	struct record *r;
	long n;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	r = gadget_reserve_buf(&events, sizeof(*r));
	if (!r)
		return 0;
	__builtin_memset(r, 0xee, sizeof(*r));
	r->ev.pid = targ_pid;
	n = bpf_probe_read_user_str(r->name, sizeof(r->name), (const char *)ctx->args[1]);
	/* Without its NUL; 0 when the name could not be read. */
	r->ev.name_len = n > 0 ? n - 1 : 0;
	gadget_submit_buf(ctx, &events, r, sizeof(*r));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
