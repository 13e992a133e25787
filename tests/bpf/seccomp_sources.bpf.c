// SPDX-License-Identifier: GPL-2.0
/*
 * Three tracers, for `gadgetctl -o seccomp` with several data sources
 * (tests/tests/gadget_kinds.rs). Every getpriority(2) and setpriority(2) of
 * targ_pid is
 *   - an event of `calls` (first source, no syscall field: `which` is a
 *     plain number, never a syscall),
 *   - getpriority: an event of `get`, its syscall number in `nr`,
 *   - setpriority: an event of `set`, its syscall number in `syscall`.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct call_event {
	gadget_pid pid;
	__u32 which;
};

struct get_event {
	gadget_pid pid;
	gadget_syscall nr;
};

struct set_event {
	gadget_pid pid;
	gadget_syscall syscall;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(call_events, 1024 * 64);
GADGET_TRACER_MAP(get_events, 1024 * 64);
GADGET_TRACER_MAP(set_events, 1024 * 64);
GADGET_TRACER(calls, call_events, call_event);
GADGET_TRACER(get, get_events, get_event);
GADGET_TRACER(set, set_events, set_event);

static __always_inline int call(void *ctx, __u32 which)
{
	struct call_event *e = gadget_reserve_buf(&call_events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = targ_pid;
	e->which = which;
	gadget_submit_buf(ctx, &call_events, e, sizeof(*e));
	return 0;
}

/* Program `prog` on syscall `sc`: a `calls` event, and its number in
 * member `member` of an event of `type` in ring `ring`. */
#define SYSCALL_SOURCE(prog, sc, ring, type, member)                            \
	SEC("tracepoint/syscalls/sys_enter_" #sc)                               \
	int prog(struct trace_event_raw_sys_enter *ctx)                         \
	{                                                                       \
		struct type *e;                                                 \
                                                                                \
		if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)            \
			return 0;                                               \
		call(ctx, (__u32)ctx->args[0]);                                 \
		e = gadget_reserve_buf(&ring, sizeof(*e));                      \
		if (!e)                                                         \
			return 0;                                               \
		e->pid = targ_pid;                                              \
		e->member = (__u32)ctx->id;                                     \
		gadget_submit_buf(ctx, &ring, e, sizeof(*e));                   \
		return 0;                                                       \
	}

SYSCALL_SOURCE(seccomp_sources_get, getpriority, get_events, get_event, nr)
SYSCALL_SOURCE(seccomp_sources_set, setpriority, set_events, set_event, syscall)

char LICENSE[] SEC("license") = "GPL";
