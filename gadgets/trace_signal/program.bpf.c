// SPDX-License-Identifier: GPL-2.0
/* trace_signal: signals sent to processes, from the signal:signal_generate tracepoint. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

/* What happened to the signal (enum trace_signal_result in the kernel). */
enum signal_result_t { DELIVERED = 0, IGNORED, ALREADY_PENDING, OVERFLOW_FAIL, LOSE_INFO };

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_pid tid;
	gadget_uid uid;
	gadget_mntns_id mntns_id;
	gadget_pid tpid;
	gadget_signal sig;
	enum signal_result_t result;
	__u8 comm[TASK_COMM_LEN];
	__u8 tcomm[TASK_COMM_LEN];
};

/* Only signals sent by this process id (0: all). */
GADGET_PARAM(pid_t, targ_pid, 0);
/* Only this signal (0: all). */
GADGET_PARAM(int, targ_sig, 0);
/* Only signals that were not delivered. */
GADGET_PARAM(bool, targ_failed, false);

GADGET_TRACER_MAP(print_events, event, 1024 * 1024);

SEC("tracepoint/signal/signal_generate")
int trace_signal_generate(struct trace_event_raw_signal_generate *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	gadget_mntns_id mntns_id = gadget_get_mntns_id();
	struct event *event;

	if (targ_pid && targ_pid != (pid_tgid >> 32))
		return 0;
	if (targ_sig && targ_sig != ctx->sig)
		return 0;
	if (targ_failed && ctx->result == DELIVERED)
		return 0;
	if (gadget_should_discard_mntns_id(mntns_id))
		return 0;

	event = gadget_reserve_buf(&print_events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp = bpf_ktime_get_boot_ns();
	event->pid = pid_tgid >> 32;
	event->tid = (__u32)pid_tgid;
	event->uid = (__u32)bpf_get_current_uid_gid();
	event->mntns_id = mntns_id;
	event->tpid = ctx->pid;
	event->sig = ctx->sig;
	event->result = ctx->result;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	/* ctx pointers cannot be offset: copy with a helper. */
	bpf_probe_read_kernel(event->tcomm, sizeof(event->tcomm), ctx->comm);
	gadget_submit_buf(ctx, &print_events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
