// SPDX-License-Identifier: GPL-2.0
/* trace_exec: every execve(2) with its arguments and result, from syscall tracepoints. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

#define ARGSIZE 128
#define TOTAL_MAX_ARGS 20
#define FULL_MAX_ARGS_ARR (TOTAL_MAX_ARGS * ARGSIZE)
#define LAST_ARG (FULL_MAX_ARGS_ARR - ARGSIZE)

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_pid ppid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_mntns_id mntns_id;
	int retval;
	__u32 args_count;
	__u32 args_size;
	__u8 comm[TASK_COMM_LEN];
	gadget_arglist args[FULL_MAX_ARGS_ARR];
};

/* Only this process id (0: all). */
GADGET_PARAM(pid_t, targ_pid, 0);
/* Only failed execs. */
GADGET_PARAM(bool, targ_failed, false);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct event);
} execs SEC(".maps");

/* The event is too large for the BPF stack: start from a zeroed template. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} empty_event SEC(".maps");

GADGET_TRACER_MAP(print_events, event, 16 * 1024 * 1024);

SEC("tracepoint/syscalls/sys_enter_execve")
int trace_enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task;
	const char **argv = (const char **)ctx->args[1];
	const char *argp;
	struct event *event;
	__u32 zero = 0;
	int ret, i;

	if (targ_pid && targ_pid != pid)
		return 0;
	if (gadget_should_discard_mntns_id(gadget_get_mntns_id()))
		return 0;

	event = bpf_map_lookup_elem(&empty_event, &zero);
	if (!event)
		return 0;
	if (bpf_map_update_elem(&execs, &pid, event, BPF_NOEXIST))
		return 0;
	event = bpf_map_lookup_elem(&execs, &pid);
	if (!event)
		return 0;

	task = (struct task_struct *)bpf_get_current_task();
	event->pid = pid;
	event->ppid = BPF_CORE_READ(task, real_parent, tgid);
	event->uid = (__u32)uid_gid;
	event->gid = uid_gid >> 32;
	event->mntns_id = gadget_get_mntns_id();
	event->args_count = 0;
	event->args_size = 0;

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
int trace_exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *event;
	int ret = (int)ctx->ret;

	event = bpf_map_lookup_elem(&execs, &pid);
	if (!event)
		return 0;
	if (targ_failed && ret >= 0)
		goto cleanup;
	event->retval = ret;
	event->timestamp = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	gadget_output_buf(ctx, &print_events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&execs, &pid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
