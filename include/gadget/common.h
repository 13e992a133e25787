/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Filling the common structs of gadget/types.h for the current task. */
#ifndef __GADGET_COMMON_H
#define __GADGET_COMMON_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns.h>

/* Fills `p` (comm, pid, tid, mount namespace, uid, gid and parent) for the current task. */
static __always_inline void gadget_process_populate(struct gadget_process *p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent;

	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->creds.uid = (__u32)uid_gid;
	p->creds.gid = uid_gid >> 32;
	bpf_get_current_comm(p->comm, sizeof(p->comm));
	p->mntns_id = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);

	parent = BPF_CORE_READ(task, real_parent);
	if (!parent)
		return;
	BPF_CORE_READ_STR_INTO(&p->parent.comm, parent, comm);
	p->parent.pid = BPF_CORE_READ(parent, tgid);
	p->parent.tid = BPF_CORE_READ(parent, pid);
}

#endif /* __GADGET_COMMON_H */
