// SPDX-License-Identifier: GPL-2.0
/*
 * A snapshotter beside a tracer (tests/tests/datasources.rs): iterator
 * `tasks` lists process targ_pid once, at start; tracer `calls` reports its
 * getpriority(2) calls whose `who` is at least WHO_BASE for as long as the
 * run lasts (the snapshot being done does not end the run).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define WHO_BASE 0x40000000

struct task_row {
	gadget_pid pid;
	gadget_comm comm[TASK_COMM_LEN];
};

struct call_event {
	gadget_pid pid;
	__u32 who;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 1024 * 64);
GADGET_TRACER(calls, events, call_event);
GADGET_ITER(tasks, task_row, iter_and_tracer_task);

SEC("iter/task")
int iter_and_tracer_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct task_row row = {};

	if (!task || task->pid != task->tgid || task->tgid != targ_pid)
		return 0;
	row.pid = task->tgid;
	__builtin_memcpy(row.comm, task->comm, sizeof(row.comm));
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getpriority")
int iter_and_tracer_getpriority(struct trace_event_raw_sys_enter *ctx)
{
	struct call_event *e;
	__u32 who = (__u32)ctx->args[1];

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid || who < WHO_BASE)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = targ_pid;
	e->who = who;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
