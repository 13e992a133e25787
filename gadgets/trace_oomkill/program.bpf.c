// SPDX-License-Identifier: GPL-2.0
/*
 * trace_oomkill: processes the OOM killer chose, from the oom:mark_victim
 * tracepoint (no kprobes needed). One data source, `oomkill`: `proc` is the
 * task that ran into the limit (it triggered the kill), `tpid`/`tcomm`/
 * `tuid` the victim, with its memory at the time.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;

	gadget_pid tpid;
	gadget_uid tuid;
	gadget_comm tcomm[TASK_COMM_LEN];
	__s16 oom_score_adj;
	__u64 total_vm_kb;
	__u64 anon_rss_kb;
	__u64 file_rss_kb;
};

GADGET_TRACER_MAP(events, 256 * 1024);
GADGET_TRACER(oomkill, events, event);

SEC("tracepoint/oom/mark_victim")
int ig_oom_mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct event *event;
	unsigned int loc;

	if (gadget_should_discard_data_current())
		return 0;
	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		return 0;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->tpid = ctx->pid;
	/* Fields added in 6.x: read with CO-RE so older kernels still load. */
	event->tuid = bpf_core_field_exists(ctx->uid) ? BPF_CORE_READ(ctx, uid) : 0;
	event->oom_score_adj =
		bpf_core_field_exists(ctx->oom_score_adj) ? BPF_CORE_READ(ctx, oom_score_adj) : 0;
	event->total_vm_kb = bpf_core_field_exists(ctx->total_vm) ? BPF_CORE_READ(ctx, total_vm) : 0;
	event->anon_rss_kb = bpf_core_field_exists(ctx->anon_rss) ? BPF_CORE_READ(ctx, anon_rss) : 0;
	event->file_rss_kb = bpf_core_field_exists(ctx->file_rss) ? BPF_CORE_READ(ctx, file_rss) : 0;
	__builtin_memset(event->tcomm, 0, sizeof(event->tcomm));
	if (bpf_core_field_exists(ctx->__data_loc_comm)) {
		loc = BPF_CORE_READ(ctx, __data_loc_comm);
		bpf_probe_read_kernel_str(event->tcomm, sizeof(event->tcomm),
					  (void *)ctx + (loc & 0xffff));
	}
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
