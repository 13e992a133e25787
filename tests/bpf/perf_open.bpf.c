// SPDX-License-Identifier: GPL-2.0
/* Test gadget: the seed's PERF_EVENT_ARRAY tracer convention (value = event struct). */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

struct event {
	__u32 pid;
	int dfd;
	__u8 comm[TASK_COMM_LEN];
	__u8 fname[64];
};

const volatile pid_t targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__type(value, struct event);
} print_events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int perf_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	struct event ev = {};

	ev.pid = bpf_get_current_pid_tgid() >> 32;
	if (targ_pid && targ_pid != ev.pid)
		return 0;
	ev.dfd = (int)ctx->args[0];
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	bpf_probe_read_user_str(&ev.fname, sizeof(ev.fname), (const char *)ctx->args[1]);
	bpf_perf_event_output(ctx, &print_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
