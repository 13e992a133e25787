// SPDX-License-Identifier: GPL-2.0
/*
 * snapshot_process: every process (or thread) on the host, from a task
 * iterator. One data source, `processes`, whose rows are struct
 * gadget_process itself: comm, pid, tid, mount namespace, creds, parent.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

/* Show every thread, not only one row per process (--threads). */
const volatile bool show_threads = false;
GADGET_PARAM(show_threads);

GADGET_ITER(processes, gadget_process, ig_snap_proc);

SEC("iter/task")
int ig_snap_proc(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct task_struct *parent;
	struct gadget_process row = {};

	if (!task)
		return 0;
	if (!show_threads && task->tgid != task->pid)
		return 0;

	row.pid = task->tgid;
	row.tid = task->pid;
	row.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	row.creds.uid = BPF_CORE_READ(task, cred, uid.val);
	row.creds.gid = BPF_CORE_READ(task, cred, gid.val);
	__builtin_memcpy(row.comm, task->comm, sizeof(row.comm));
	if (gadget_should_discard_data(row.mntns_id, row.pid, row.tid, row.comm, row.creds.uid,
				       row.creds.gid))
		return 0;

	parent = task->real_parent;
	if (parent) {
		row.parent.pid = BPF_CORE_READ(parent, tgid);
		row.parent.tid = BPF_CORE_READ(parent, pid);
		BPF_CORE_READ_STR_INTO(&row.parent.comm, parent, comm);
	}
	bpf_seq_write(seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
