// SPDX-License-Identifier: GPL-2.0
/*
 * A map type aya 0.14 has no wrapper for (tests/tests/loader.rs): task-local
 * storage (Linux 5.11) carries a getpriority(2)'s `who` from the syscall's
 * entry to its exit, the way tracers keep per-call state without a hash map
 * keyed by thread. Each getpriority of targ_pid sends `who` and the return
 * value, if the exit found the entry's storage. The user ring buffer and the
 * arena are in objects of their own (user_ringbuf.bpf.c, arena.bpf.c), so a
 * kernel without one of them still runs the others.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct call {
	__u32 who;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct call);
} calls SEC(".maps");

struct storage_event {
	gadget_pid pid;
	__u32 who;
	__s64 ret;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 64 * 1024);
GADGET_TRACER(storage, events, storage_event);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int storage_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct call *c;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	c = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (c)
		c->who = (__u32)ctx->args[1];
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_getpriority")
int storage_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct storage_event *e;
	struct task_struct *task;
	struct call *c;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	task = bpf_get_current_task_btf();
	c = bpf_task_storage_get(&calls, task, 0, 0);
	if (!c)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (e) {
		e->pid = targ_pid;
		e->who = c->who;
		e->ret = ctx->ret;
		gadget_submit_buf(ctx, &events, e, sizeof(*e));
	}
	bpf_task_storage_delete(&calls, task);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
