// SPDX-License-Identifier: GPL-2.0
/* top_file: reads and writes per process and file, from read/write syscall tracepoints. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/macros.h>

#define S_IFMT 00170000
#define S_IFREG 0100000
#define S_IFSOCK 0140000

enum file_type_t { OTHER = 0, REGULAR = 1, SOCKET = 2 };

struct file_id {
	gadget_pid pid;
	gadget_pid tid;
	gadget_mntns_id mntns_id;
	__u32 dev;
	__u64 inode;
	enum file_type_t type;
	__u8 comm[TASK_COMM_LEN];
	__u8 file[64];
};

struct file_stat {
	__u64 reads;
	__u64 writes;
	__u64 rbytes;
	__u64 wbytes;
};

/* Only this process id (0: all). */
GADGET_PARAM(pid_t, targ_pid, 0);
/* Count regular files only (no sockets, pipes, terminals). */
GADGET_PARAM(bool, regular_only, false);

struct call {
	__u32 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct file_id);
	__type(value, struct file_stat);
} stats_files SEC(".maps");

static __always_inline int enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct call call = { .fd = (__u32)ctx->args[0] };

	if (targ_pid && targ_pid != (pid_tgid >> 32))
		return 0;
	if (gadget_should_discard_mntns_id(gadget_get_mntns_id()))
		return 0;
	bpf_map_update_elem(&calls, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline int leave(struct trace_event_raw_sys_exit *ctx, const bool write)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file_id key = {};
	struct file_stat zero = {}, *stat;
	struct call *call;
	struct file **fds, *file;
	struct dentry *dentry;
	umode_t mode;
	long ret = ctx->ret;

	call = bpf_map_lookup_elem(&calls, &tid);
	if (!call)
		return 0;
	bpf_map_delete_elem(&calls, &tid);
	if (ret < 0)
		return 0;

	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[call->fd]) || !file)
		return 0;
	mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) == S_IFREG)
		key.type = REGULAR;
	else if ((mode & S_IFMT) == S_IFSOCK)
		key.type = SOCKET;
	if (regular_only && key.type != REGULAR)
		return 0;
	key.pid = pid_tgid >> 32;
	key.tid = tid;
	key.mntns_id = gadget_get_mntns_id();
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.inode = BPF_CORE_READ(file, f_inode, i_ino);
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	dentry = BPF_CORE_READ(file, f_path.dentry);
	bpf_probe_read_kernel_str(&key.file, sizeof(key.file), BPF_CORE_READ(dentry, d_name.name));

	stat = bpf_map_lookup_elem(&stats_files, &key);
	if (!stat) {
		bpf_map_update_elem(&stats_files, &key, &zero, BPF_NOEXIST);
		stat = bpf_map_lookup_elem(&stats_files, &key);
		if (!stat)
			return 0;
	}
	if (write) {
		__sync_fetch_and_add(&stat->writes, 1);
		__sync_fetch_and_add(&stat->wbytes, ret);
	} else {
		__sync_fetch_and_add(&stat->reads, 1);
		__sync_fetch_and_add(&stat->rbytes, ret);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int top_file_enter_read(struct trace_event_raw_sys_enter *ctx) { return enter(ctx); }

SEC("tracepoint/syscalls/sys_enter_write")
int top_file_enter_write(struct trace_event_raw_sys_enter *ctx) { return enter(ctx); }

SEC("tracepoint/syscalls/sys_exit_read")
int top_file_exit_read(struct trace_event_raw_sys_exit *ctx) { return leave(ctx, false); }

SEC("tracepoint/syscalls/sys_exit_write")
int top_file_exit_write(struct trace_event_raw_sys_exit *ctx) { return leave(ctx, true); }

char LICENSE[] SEC("license") = "GPL";
