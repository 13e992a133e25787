// SPDX-License-Identifier: GPL-2.0
/* snapshot_process: every process (or thread) on the host, from a task iterator. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/macros.h>

struct process {
	gadget_pid pid;
	gadget_pid tid;
	gadget_pid ppid;
	gadget_uid uid;
	gadget_gid gid;
	gadget_mntns_id mntns_id;
	__u8 comm[TASK_COMM_LEN];
};

GADGET_ITER_TYPE(struct process);

/* Show every thread, not only one row per process. */
GADGET_PARAM(bool, threads, false);

SEC("iter/task")
int snapshot_process(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct process row = {};
	gadget_mntns_id mntns_id;

	if (!task)
		return 0;
	if (!threads && task->tgid != task->pid)
		return 0;
	mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	if (gadget_should_discard_mntns_id(mntns_id))
		return 0;

	row.pid = task->tgid;
	row.tid = task->pid;
	row.ppid = BPF_CORE_READ(task, real_parent, tgid);
	row.uid = BPF_CORE_READ(task, cred, uid.val);
	row.gid = BPF_CORE_READ(task, cred, gid.val);
	row.mntns_id = mntns_id;
	__builtin_memcpy(row.comm, task->comm, sizeof(row.comm));
	bpf_seq_write(seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
