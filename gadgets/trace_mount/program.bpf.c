// SPDX-License-Identifier: GPL-2.0
/*
 * trace_mount: every mount(2) and umount2(2) with its result, from the
 * syscall tracepoints (no kprobes needed). One data source, `mount`.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

enum op { MOUNT = 0, UMOUNT = 1 };

/* mount(2) flags: an enum named *_set prints as MS_RDONLY|MS_NOSUID. */
enum mount_flags_set {
	MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_SYNCHRONOUS = 16,
	MS_REMOUNT = 32, MS_MANDLOCK = 64, MS_DIRSYNC = 128, MS_NOSYMFOLLOW = 256,
	MS_NOATIME = 1024, MS_NODIRATIME = 2048, MS_BIND = 4096, MS_MOVE = 8192,
	MS_REC = 16384, MS_SILENT = 32768, MS_POSIXACL = 1 << 16, MS_UNBINDABLE = 1 << 17,
	MS_PRIVATE = 1 << 18, MS_SLAVE = 1 << 19, MS_SHARED = 1 << 20, MS_RELATIME = 1 << 21,
	MS_KERNMOUNT = 1 << 22, MS_I_VERSION = 1 << 23, MS_STRICTATIME = 1 << 24,
	MS_LAZYTIME = 1 << 25,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;

	enum op op_raw;
	enum mount_flags_set flags_raw;
	gadget_errno error_raw; /* 0, or the errno of a failed call */
	char fs[16];
	char src[64];
	char target[128];
	char data[64];
};

struct args_t {
	const char *src;
	const char *target;
	const char *fs;
	const char *data;
	__u64 flags;
	enum op op;
};

/* Pending calls by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

/* Events are too big for the stack: built in a per-CPU slot, then copied. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(mount, events, event);

static __always_inline int enter(struct args_t *args)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&start, &tid, args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_mount")
int ig_mount_e(struct syscall_trace_enter *ctx)
{
	struct args_t args = {
		.src = (const char *)ctx->args[0],
		.target = (const char *)ctx->args[1],
		.fs = (const char *)ctx->args[2],
		.flags = ctx->args[3],
		.data = (const char *)ctx->args[4],
		.op = MOUNT,
	};
	return enter(&args);
}

SEC("tracepoint/syscalls/sys_enter_umount")
int ig_umount_e(struct syscall_trace_enter *ctx)
{
	struct args_t args = {
		.target = (const char *)ctx->args[0],
		.flags = ctx->args[1],
		.op = UMOUNT,
	};
	return enter(&args);
}

static __always_inline int leave(struct syscall_trace_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), zero = 0;
	struct args_t *args = bpf_map_lookup_elem(&start, &tid);
	struct event *event;

	if (!args)
		return 0;
	event = bpf_map_lookup_elem(&scratch, &zero);
	if (!event)
		goto cleanup;
	__builtin_memset(event, 0, sizeof(*event));
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->error_raw = ctx->ret >= 0 ? 0 : -ctx->ret;
	event->op_raw = args->op;
	event->flags_raw = args->flags;
	if (args->fs)
		bpf_probe_read_user_str(&event->fs, sizeof(event->fs), args->fs);
	if (args->src)
		bpf_probe_read_user_str(&event->src, sizeof(event->src), args->src);
	if (args->data)
		bpf_probe_read_user_str(&event->data, sizeof(event->data), args->data);
	bpf_probe_read_user_str(&event->target, sizeof(event->target), args->target);
	gadget_output_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mount")
int ig_mount_x(struct syscall_trace_exit *ctx)
{
	return leave(ctx);
}

SEC("tracepoint/syscalls/sys_exit_umount")
int ig_umount_x(struct syscall_trace_exit *ctx)
{
	return leave(ctx);
}

char LICENSE[] SEC("license") = "GPL";
