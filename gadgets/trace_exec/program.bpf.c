// SPDX-License-Identifier: GPL-2.0
/*
 * trace_exec: every execve(2) with its arguments and result, from the
 * syscall tracepoints (no kprobes needed). One data source, `exec`.
 *
 * The event is too large for the BPF stack, so sys_enter builds it in a map
 * (from a zeroed per-CPU template) and sys_exit copies it to the buffer.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define ARGSIZE 128
#define TOTAL_MAX_ARGS 20
#define FULL_MAX_ARGS_ARR (TOTAL_MAX_ARGS * ARGSIZE)
#define LAST_ARG (FULL_MAX_ARGS_ARR - ARGSIZE)

struct event {
	gadget_timestamp timestamp_raw;
	/* The process after the exec (its new comm when the exec succeeded). */
	struct gadget_process proc;

	gadget_errno error_raw; /* 0, or the errno of a failed exec */
	__u32 args_count;
	__u32 args_size;
	/* The file name, then argv[1..]: '\0'-separated, printed as a list. */
	gadget_arglist args[FULL_MAX_ARGS_ARR];
};

/* Only failed execs (--failed, see gadget.yaml). */
const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

/* Pending execs by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct event);
} execs SEC(".maps");

/* A zeroed event to start from. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} empty_event SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(exec, events, event);

SEC("tracepoint/syscalls/sys_enter_execve")
int ig_execve_e(struct syscall_trace_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	const char **argv = (const char **)ctx->args[1];
	const char *argp;
	struct event *event;
	__u32 zero = 0;
	int ret, i;

	if (gadget_should_discard_data_current())
		return 0;

	event = bpf_map_lookup_elem(&empty_event, &zero);
	if (!event)
		return 0;
	if (bpf_map_update_elem(&execs, &tid, event, BPF_NOEXIST))
		return 0;
	event = bpf_map_lookup_elem(&execs, &tid);
	if (!event)
		return 0;

	ret = bpf_probe_read_user_str(event->args, ARGSIZE, (const char *)ctx->args[0]);
	if (ret < 0)
		return 0;
	if (ret <= ARGSIZE)
		event->args_size += ret;
	else
		event->args[0] = '\0';
	event->args_count++;

	/* argv[0] repeats the file name: start at argv[1]. */
#pragma unroll
	for (i = 1; i < TOTAL_MAX_ARGS; i++) {
		if (bpf_probe_read_user(&argp, sizeof(argp), &argv[i]) || !argp)
			return 0;
		if (event->args_size > LAST_ARG)
			return 0;
		ret = bpf_probe_read_user_str(&event->args[event->args_size], ARGSIZE, argp);
		if (ret < 0 || ret > ARGSIZE)
			return 0;
		event->args_count++;
		event->args_size += ret;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int ig_execve_x(struct syscall_trace_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct event *event;
	long ret = ctx->ret;

	event = bpf_map_lookup_elem(&execs, &tid);
	if (!event)
		return 0;
	if (targ_failed && ret >= 0)
		goto cleanup;
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->error_raw = ret >= 0 ? 0 : -ret;
	gadget_output_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&execs, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
