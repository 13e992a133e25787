// SPDX-License-Identifier: GPL-2.0
/*
 * BPF-to-BPF calls as Inspektor Gadget's gadgets make them
 * (tests/tests/externs.rs): two programs in one section, both calling
 * shared `static __noinline` subprograms in .text (the second one at a
 * non-zero offset, one calling another), and a global noinline function
 * the verifier checks on its own. Every getpriority(2) of targ_pid whose
 * `who` is SUBPROGS_WHO + n sends two events:
 *   prog 1: value = scale(n) = add_bias(n * 3)   = n * 3 + 7
 *   prog 2: value = mix(n)   = scale(n) ^ 0x5a   = (n * 3 + 7) ^ 0x5a
 * and `global` = double_it(n) = n * 2 in both.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define SUBPROGS_WHO 0x53554200

struct subprog_event {
	gadget_pid pid;
	__u32 prog;
	__u32 n;
	__u32 value;
	__u32 global;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(subprogs, events, subprog_event);

static __noinline __u32 add_bias(__u32 x)
{
	return x + 7;
}

static __noinline __u32 scale(__u32 n)
{
	return add_bias(n * 3);
}

static __noinline __u32 mix(__u32 n)
{
	return scale(n) ^ 0x5a;
}

__noinline int double_it(int n)
{
	return n * 2;
}

static __noinline int emit(void *ctx, __u32 prog, __u32 n, __u32 value)
{
	struct subprog_event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return 0;
	e->pid = targ_pid;
	e->prog = prog;
	e->n = n;
	e->value = value;
	e->global = double_it(n);
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

static __always_inline int selected(struct trace_event_raw_sys_enter *ctx, __u32 *n)
{
	__u32 who = (__u32)ctx->args[1];

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid || who < SUBPROGS_WHO ||
	    who >= SUBPROGS_WHO + 256)
		return 0;
	*n = who - SUBPROGS_WHO;
	return 1;
}

SEC("tracepoint/syscalls/sys_enter_getpriority")
int subprogs_first(struct trace_event_raw_sys_enter *ctx)
{
	__u32 n;

	if (!selected(ctx, &n))
		return 0;
	return emit(ctx, 1, n, scale(n));
}

SEC("tracepoint/syscalls/sys_enter_getpriority")
int subprogs_second(struct trace_event_raw_sys_enter *ctx)
{
	__u32 n;

	if (!selected(ctx, &n))
		return 0;
	return emit(ctx, 2, n, mix(n));
}

char LICENSE[] SEC("license") = "GPL";
