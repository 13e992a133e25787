// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: libbpf's declarative program array (`__array(values, ...)`
 * with an initializer in `.maps`): slot 1 holds `tail_getcwd`, which the
 * entry program tail-calls; slot 0 stays empty, so a tail call there falls
 * through. The event says which ran.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/types.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	/* 1: the tail-called program; 2: the entry program after a tail call to an empty slot */
	__u32 ran;
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

int tail_getcwd(void *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__array(values, int(void *));
} tail_calls SEC(".maps") = {
	.values = {
		[1] = (void *)&tail_getcwd,
	},
};

static __always_inline void emit(void *ctx, __u32 ran)
{
	struct event *ev = gadget_reserve_buf(print_events, sizeof(*ev));

	if (!ev)
		return;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->ran = ran;
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
}

SEC("tracepoint")
int tail_getcwd(void *ctx)
{
	emit(ctx, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getcwd")
int entry_getcwd(void *ctx)
{
	if (targ_pid != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	bpf_tail_call(ctx, &tail_calls, 0);
	emit(ctx, 2);
	bpf_tail_call(ctx, &tail_calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
