// SPDX-License-Identifier: GPL-2.0
/* A task_file iterator: one row per open file of one process (targ_pid). */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/macros.h>

struct open_file {
	gadget_pid pid;
	__u32 fd;
	__u64 inode;
	__u8 name[64];
};

GADGET_ITER_TYPE(struct open_file);

GADGET_PARAM(pid_t, targ_pid, 0);

SEC("iter/task_file")
int open_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct open_file row = {};

	if (!task || !file || task->tgid != targ_pid || task->tgid != task->pid)
		return 0;
	row.pid = task->tgid;
	row.fd = ctx->fd;
	row.inode = BPF_CORE_READ(file, f_inode, i_ino);
	bpf_probe_read_kernel_str(row.name, sizeof(row.name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
