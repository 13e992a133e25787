// SPDX-License-Identifier: GPL-2.0
/* A GADGET_ITER snapshotter: one row per process (tests/tests/ig_conventions.rs). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/macros.h>
#include <gadget/types.h>

struct task_row {
	gadget_pid pid;
	gadget_ppid ppid;
	gadget_uid uid;
	gadget_mntns_id mntns_id;
	gadget_comm comm[TASK_COMM_LEN];
};

GADGET_ITER(tasks, task_row, ig_test_iter_task);

SEC("iter/task")
int ig_test_iter_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct task_row row = {};

	if (!task || task->pid != task->tgid)
		return 0;
	row.pid = task->tgid;
	row.ppid = BPF_CORE_READ(task, real_parent, tgid);
	row.uid = task->cred->uid.val;
	row.mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	__builtin_memcpy(row.comm, task->comm, sizeof(row.comm));
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
