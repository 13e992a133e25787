/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The common filters every gadget should offer: --pid, --tid, --uid, --gid
 * and --comm (the agent gives the parameters targ_pid, targ_tid, targ_uid,
 * targ_gid and targ_comm those names, by their gadget_* types), plus the
 * container selection of gadget/mntns_filter.h. User-space words: a pid is
 * a process (the kernel's tgid), a tid a thread (the kernel's pid).
 *
 *   if (gadget_should_discard_data_current())
 *           return 0;
 */
#ifndef __GADGET_FILTER_H
#define __GADGET_FILTER_H

#include <bpf/bpf_helpers.h>
#include <gadget/macros.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#ifndef GADGET_TYPE_NETWORKING
#include <gadget/mntns.h>
#endif

/* "No uid/gid filter": no process has uid or gid 2^32 - 1. */
#define GADGET_INVALID_ID ((gadget_uid)-1)

const volatile gadget_pid targ_pid = 0;
GADGET_PARAM(targ_pid);
const volatile gadget_tid targ_tid = 0;
GADGET_PARAM(targ_tid);
const volatile gadget_uid targ_uid = GADGET_INVALID_ID;
GADGET_PARAM(targ_uid);
const volatile gadget_gid targ_gid = GADGET_INVALID_ID;
GADGET_PARAM(targ_gid);
const volatile gadget_comm targ_comm[TASK_COMM_LEN] = {};
GADGET_PARAM(targ_comm);

static __always_inline bool gadget_should_discard_pid(gadget_pid pid)
{
	return targ_pid && targ_pid != pid;
}

static __always_inline bool gadget_should_discard_tid(gadget_tid tid)
{
	return targ_tid && targ_tid != tid;
}

static __always_inline bool gadget_should_discard_uid(gadget_uid uid)
{
	return targ_uid != GADGET_INVALID_ID && targ_uid != uid;
}

static __always_inline bool gadget_should_discard_gid(gadget_gid gid)
{
	return targ_gid != GADGET_INVALID_ID && targ_gid != gid;
}

/* True when --comm is set and `comm` (TASK_COMM_LEN bytes) differs from it. */
static __always_inline bool gadget_should_discard_comm(gadget_comm comm[TASK_COMM_LEN])
{
	if (!targ_comm[0])
		return false;
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return true;
		if (!comm[i])
			break;
	}
	return false;
}

/* True when any filter rejects an event with these attributes. */
static __always_inline bool gadget_should_discard_data(gadget_mntns_id mntns_id, gadget_pid pid,
						       gadget_tid tid,
						       gadget_comm comm[TASK_COMM_LEN],
						       gadget_uid uid, gadget_uid gid)
{
	return gadget_should_discard_mntns_id(mntns_id) || gadget_should_discard_pid(pid) ||
	       gadget_should_discard_tid(tid) || gadget_should_discard_uid(uid) ||
	       gadget_should_discard_gid(gid) || gadget_should_discard_comm(comm);
}

#ifndef GADGET_TYPE_NETWORKING
/*
 * True when any filter rejects the current task. Cheap when no filter is
 * set: each attribute is read only when its filter needs it.
 */
static __always_inline bool gadget_should_discard_data_current(void)
{
	if (gadget_should_discard_mntns_id(gadget_get_current_mntns_id()))
		return true;
	if (targ_pid || targ_tid) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();

		if (gadget_should_discard_pid(pid_tgid >> 32) ||
		    gadget_should_discard_tid((__u32)pid_tgid))
			return true;
	}
	if (targ_uid != GADGET_INVALID_ID || targ_gid != GADGET_INVALID_ID) {
		__u64 uid_gid = bpf_get_current_uid_gid();

		if (gadget_should_discard_uid((__u32)uid_gid) ||
		    gadget_should_discard_gid(uid_gid >> 32))
			return true;
	}
	if (targ_comm[0]) {
		char comm[TASK_COMM_LEN];

		bpf_get_current_comm(comm, sizeof(comm));
		if (gadget_should_discard_comm(comm))
			return true;
	}
	return false;
}
#endif

/*
 * gadgetd: for an event no process can be attributed to (a timer, a softirq,
 * a packet or socket whose owner is unknown), true when any process filter
 * (--pid, --tid, --uid, --gid, --comm) is set: such an event cannot be shown
 * to match it. Containers of such gadgets are selected by network namespace
 * (the agent runs them in the containers' namespaces), not here.
 */
static __always_inline bool gadget_should_discard_unattributed(void)
{
	return targ_pid || targ_tid || targ_uid != GADGET_INVALID_ID ||
	       targ_gid != GADGET_INVALID_ID || targ_comm[0];
}

/*
 * Packets: filters by the socket's owner from the gadget_sockets map
 * (gadget/sockets-map.h). Without an owner the packet is dropped whenever
 * any filter is set.
 */
static __always_inline bool gadget_should_discard_data_by_skb(struct gadget_socket_value *owner)
{
	if (!owner)
		return gadget_filter_by_mntns || gadget_should_discard_unattributed();
	return gadget_should_discard_data(owner->mntns, owner->pid_tgid >> 32,
					  (__u32)owner->pid_tgid, owner->task,
					  (__u32)owner->uid_gid, owner->uid_gid >> 32);
}

#endif /* __GADGET_FILTER_H */
