// SPDX-License-Identifier: GPL-2.0
/*
 * A typed `__ksym` extern (tests/tests/externs.rs): the scheduler's per-CPU
 * run queue, read through bpf_this_cpu_ptr(). Every getpriority(2) of
 * targ_pid with `who` == KSYM_WHO sends the run queue's CPU number beside
 * bpf_get_smp_processor_id(): the same number when the kernel resolved the
 * variable.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define KSYM_WHO 0x4b53594d

extern const struct rq runqueues __ksym;

struct ksym_event {
	gadget_pid pid;
	__u32 rq_cpu;
	__u32 cpu;
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 64 * 1024);
GADGET_TRACER(ksym, events, ksym_event);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int ksym_getpriority(struct trace_event_raw_sys_enter *ctx)
{
	const struct rq *rq;
	struct ksym_event *e;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid || (__u32)ctx->args[1] != KSYM_WHO)
		return 0;
	rq = bpf_this_cpu_ptr(&runqueues);
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = targ_pid;
	e->rq_cpu = rq->cpu;
	e->cpu = bpf_get_smp_processor_id();
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
