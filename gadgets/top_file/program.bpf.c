// SPDX-License-Identifier: GPL-2.0
/*
 * top_file: reads and writes per process and file, from the read/write
 * syscall tracepoints (no kprobes needed). One data source, `files`: a map
 * iterator, the map read and cleared every interval.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define S_IFMT 00170000
#define S_IFREG 0100000
#define S_IFSOCK 0140000

enum file_type { OTHER = 0, REGULAR = 1, SOCKET = 2 };

/* The key: who, and which file. */
struct file_id {
	struct gadget_process proc;
	__u32 dev;
	__u64 inode;
	enum file_type type;
	char file[64];
};

/* The value: what it did this interval. */
struct file_stat {
	__u64 reads;
	__u64 writes;
	__u64 rbytes;
	__u64 wbytes;
};

/* Count regular files only, no sockets, pipes or terminals (--regular_only). */
const volatile bool regular_only = false;
GADGET_PARAM(regular_only);

/* A read or write in flight: its descriptor, by thread id. */
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
} stats SEC(".maps");

GADGET_MAPITER(files, stats);

static __always_inline int enter(struct syscall_trace_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call call = { .fd = (__u32)ctx->args[0] };

	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&calls, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline int leave(struct syscall_trace_exit *ctx, const bool write)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
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
	gadget_process_populate(&key.proc);
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.inode = BPF_CORE_READ(file, f_inode, i_ino);
	dentry = BPF_CORE_READ(file, f_path.dentry);
	bpf_probe_read_kernel_str(&key.file, sizeof(key.file), BPF_CORE_READ(dentry, d_name.name));

	stat = bpf_map_lookup_elem(&stats, &key);
	if (!stat) {
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		stat = bpf_map_lookup_elem(&stats, &key);
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
int ig_topfile_rd_e(struct syscall_trace_enter *ctx)
{
	return enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_write")
int ig_topfile_wr_e(struct syscall_trace_enter *ctx)
{
	return enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_read")
int ig_topfile_rd_x(struct syscall_trace_exit *ctx)
{
	return leave(ctx, false);
}

SEC("tracepoint/syscalls/sys_exit_write")
int ig_topfile_wr_x(struct syscall_trace_exit *ctx)
{
	return leave(ctx, true);
}

char LICENSE[] SEC("license") = "GPL";
