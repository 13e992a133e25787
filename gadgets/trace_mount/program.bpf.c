// SPDX-License-Identifier: GPL-2.0
/* trace_mount: mount(2) and umount2(2) calls, from syscall tracepoints. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

enum op_t { MOUNT = 0, UMOUNT = 1 };

/* mount(2) flags: printed as MS_RDONLY|MS_NOSUID (every member is one bit). */
enum mount_flags_t {
	MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_SYNCHRONOUS = 16,
	MS_REMOUNT = 32, MS_MANDLOCK = 64, MS_DIRSYNC = 128, MS_NOSYMFOLLOW = 256,
	MS_NOATIME = 1024, MS_NODIRATIME = 2048, MS_BIND = 4096, MS_MOVE = 8192,
	MS_REC = 16384, MS_SILENT = 32768, MS_POSIXACL = 1 << 16, MS_UNBINDABLE = 1 << 17,
	MS_PRIVATE = 1 << 18, MS_SLAVE = 1 << 19, MS_SHARED = 1 << 20, MS_RELATIME = 1 << 21,
	MS_KERNMOUNT = 1 << 22, MS_I_VERSION = 1 << 23, MS_STRICTATIME = 1 << 24,
	MS_LAZYTIME = 1 << 25,
};

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_pid tid;
	gadget_mntns_id mntns_id;
	gadget_errno ret;
	enum op_t op;
	enum mount_flags_t flags;
	__u8 comm[TASK_COMM_LEN];
	__u8 fs[16];
	__u8 src[64];
	__u8 target[128];
	__u8 data[64];
};

struct args_t {
	const char *src;
	const char *target;
	const char *fs;
	const char *data;
	__u64 flags;
	enum op_t op;
};

/* Only this process id (0: all). */
GADGET_PARAM(pid_t, targ_pid, 0);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

/* Events are too big for the stack: built in a per-CPU slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

GADGET_TRACER_MAP(print_events, event, 1024 * 1024);

static __always_inline int enter(struct args_t *args)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;

	if (targ_pid && targ_pid != (pid_tgid >> 32))
		return 0;
	if (gadget_should_discard_mntns_id(gadget_get_mntns_id()))
		return 0;
	bpf_map_update_elem(&start, &tid, args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_mount")
int trace_mount_enter(struct trace_event_raw_sys_enter *ctx)
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
int trace_umount_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct args_t args = {
		.target = (const char *)ctx->args[0],
		.flags = ctx->args[1],
		.op = UMOUNT,
	};
	return enter(&args);
}

static __always_inline int leave(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, zero = 0;
	struct args_t *args = bpf_map_lookup_elem(&start, &tid);
	struct event *event;

	if (!args)
		return 0;
	event = bpf_map_lookup_elem(&scratch, &zero);
	if (!event)
		goto cleanup;
	__builtin_memset(event, 0, sizeof(*event));
	event->timestamp = bpf_ktime_get_boot_ns();
	event->pid = pid_tgid >> 32;
	event->tid = tid;
	event->mntns_id = gadget_get_mntns_id();
	event->ret = ctx->ret;
	event->op = args->op;
	event->flags = args->flags;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	if (args->fs)
		bpf_probe_read_user_str(&event->fs, sizeof(event->fs), args->fs);
	if (args->src)
		bpf_probe_read_user_str(&event->src, sizeof(event->src), args->src);
	if (args->data)
		bpf_probe_read_user_str(&event->data, sizeof(event->data), args->data);
	bpf_probe_read_user_str(&event->target, sizeof(event->target), args->target);
	gadget_output_buf(ctx, &print_events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mount")
int trace_mount_exit(struct trace_event_raw_sys_exit *ctx) { return leave(ctx); }

SEC("tracepoint/syscalls/sys_exit_umount")
int trace_umount_exit(struct trace_event_raw_sys_exit *ctx) { return leave(ctx); }

char LICENSE[] SEC("license") = "GPL";
