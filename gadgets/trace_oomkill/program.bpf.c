// SPDX-License-Identifier: GPL-2.0
/* trace_oomkill: processes chosen by the OOM killer, from the oom:mark_victim tracepoint. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_uid uid;
	/* The task that ran into the limit (it triggered the kill). */
	gadget_pid trigger_pid;
	__s16 oom_score_adj;
	__u64 total_vm_kb;
	__u64 anon_rss_kb;
	__u64 file_rss_kb;
	__u8 comm[TASK_COMM_LEN];
	__u8 trigger_comm[TASK_COMM_LEN];
};

GADGET_TRACER_MAP(print_events, event, 256 * 1024);

SEC("tracepoint/oom/mark_victim")
int trace_oom_mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct event *event = gadget_reserve_buf(&print_events, sizeof(*event));
	unsigned int loc;

	if (!event)
		return 0;
	event->timestamp = bpf_ktime_get_boot_ns();
	event->pid = ctx->pid;
	event->trigger_pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&event->trigger_comm, sizeof(event->trigger_comm));
	/* Fields added in 6.x: read with CO-RE so older kernels still load. */
	event->uid = bpf_core_field_exists(ctx->uid) ? BPF_CORE_READ(ctx, uid) : 0;
	event->oom_score_adj = bpf_core_field_exists(ctx->oom_score_adj) ? BPF_CORE_READ(ctx, oom_score_adj) : 0;
	event->total_vm_kb = bpf_core_field_exists(ctx->total_vm) ? BPF_CORE_READ(ctx, total_vm) : 0;
	event->anon_rss_kb = bpf_core_field_exists(ctx->anon_rss) ? BPF_CORE_READ(ctx, anon_rss) : 0;
	event->file_rss_kb = bpf_core_field_exists(ctx->file_rss) ? BPF_CORE_READ(ctx, file_rss) : 0;
	__builtin_memset(event->comm, 0, sizeof(event->comm));
	if (bpf_core_field_exists(ctx->__data_loc_comm)) {
		loc = BPF_CORE_READ(ctx, __data_loc_comm);
		bpf_probe_read_kernel_str(event->comm, sizeof(event->comm), (void *)ctx + (loc & 0xffff));
	}
	gadget_submit_buf(ctx, &print_events, event, sizeof(*event));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
