// SPDX-License-Identifier: GPL-2.0
/* trace_open: every openat(2) with its result, from syscall tracepoints. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_mntns_id mntns_id;
	int ret;
	int flags;
	__u16 mode;
	__u8 comm[TASK_COMM_LEN];
	__u8 fname[NAME_MAX];
};

struct args_t {
	const char *fname;
	int flags;
	__u16 mode;
};

/* Only this process id (0: all). */
GADGET_PARAM(pid_t, targ_pid, 0);
/* Only failed opens. */
GADGET_PARAM(bool, targ_failed, false);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct args_t);
} start SEC(".maps");

GADGET_TRACER_MAP(print_events, event, 4 * 1024 * 1024);

SEC("tracepoint/syscalls/sys_enter_openat")
int trace_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct args_t args = {};

	if (targ_pid && targ_pid != tgid)
		return 0;
	if (gadget_should_discard_mntns_id(gadget_get_mntns_id()))
		return 0;

	args.fname = (const char *)ctx->args[1];
	args.flags = (int)ctx->args[2];
	args.mode = (__u16)ctx->args[3];
	bpf_map_update_elem(&start, &pid_tgid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int trace_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct args_t *args;
	struct event *event;
	int ret;

	args = bpf_map_lookup_elem(&start, &pid_tgid);
	if (!args)
		return 0;
	ret = (int)ctx->ret;
	if (targ_failed && ret >= 0)
		goto cleanup;

	event = gadget_reserve_buf(&print_events, sizeof(*event));
	if (!event)
		goto cleanup;

	event->timestamp = bpf_ktime_get_boot_ns();
	event->pid = pid_tgid >> 32;
	event->uid = (__u32)uid_gid;
	event->gid = uid_gid >> 32;
	event->mntns_id = gadget_get_mntns_id();
	event->ret = ret;
	event->flags = args->flags;
	event->mode = args->mode;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	bpf_probe_read_user_str(&event->fname, sizeof(event->fname), args->fname);
	gadget_submit_buf(ctx, &print_events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &pid_tgid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
