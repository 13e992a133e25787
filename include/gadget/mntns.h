/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The mount namespace of the current task (tracing programs). */
#ifndef __GADGET_MNTNS_H
#define __GADGET_MNTNS_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>

/* The inode number of the current task's mount namespace. */
static __always_inline gadget_mntns_id gadget_get_current_mntns_id(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

/* The older name of gadget_get_current_mntns_id(). */
static __always_inline gadget_mntns_id gadget_get_mntns_id(void)
{
	return gadget_get_current_mntns_id();
}

#endif /* __GADGET_MNTNS_H */
