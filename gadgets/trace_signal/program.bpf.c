// SPDX-License-Identifier: GPL-2.0
/*
 * trace_signal: signals sent to processes, from the signal:signal_generate
 * tracepoint (no kprobes needed). One data source, `signal`; the process in
 * `proc` is the sender, `tpid`/`tcomm` the target.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

/* What happened to the signal (enum trace_signal_result in the kernel). */
enum signal_result { DELIVERED = 0, IGNORED, ALREADY_PENDING, OVERFLOW_FAIL, LOSE_INFO };

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;

	gadget_pid tpid;
	gadget_comm tcomm[TASK_COMM_LEN];
	gadget_signal sig_raw;
	enum signal_result result_raw;
};

/* Only this signal number (--signal; 0: all). */
const volatile int targ_sig = 0;
GADGET_PARAM(targ_sig);
/* Only signals that were not delivered (--failed). */
const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(signal, events, event);

SEC("tracepoint/signal/signal_generate")
int ig_sig_generate(struct trace_event_raw_signal_generate *ctx)
{
	struct event *event;

	if (targ_sig && targ_sig != ctx->sig)
		return 0;
	if (targ_failed && ctx->result == DELIVERED)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->tpid = ctx->pid;
	event->sig_raw = ctx->sig;
	event->result_raw = ctx->result;
	/* ctx pointers cannot be offset: copy with a helper. */
	bpf_probe_read_kernel(event->tcomm, sizeof(event->tcomm), ctx->comm);
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
