// SPDX-License-Identifier: GPL-2.0
/* advise_seccomp: which syscalls a workload makes, to build a seccomp profile. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/macros.h>

struct syscall_key {
	gadget_mntns_id mntns_id;
	gadget_syscall syscall;
	__u8 comm[TASK_COMM_LEN];
};

struct syscall_count {
	__u64 count;
};

/* Only tasks with this command name (empty: all). */
GADGET_PARAM(char, targ_comm[TASK_COMM_LEN], "");

/* A profile needs every syscall seen since the start, not per interval. */
GADGET_STATS_KEEP();

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syscall_key);
	__type(value, struct syscall_count);
} stats_syscalls SEC(".maps");

static __always_inline bool comm_matches(const __u8 *comm)
{
	if (!targ_comm[0])
		return true;
#pragma unroll
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (targ_comm[i] != comm[i])
			return false;
		if (!comm[i])
			return true;
	}
	return true;
}

SEC("raw_tracepoint/sys_enter")
int advise_seccomp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct syscall_key key = {};
	struct syscall_count one = { .count = 1 }, *count;

	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	if (!comm_matches(key.comm))
		return 0;
	key.mntns_id = gadget_get_mntns_id();
	if (gadget_should_discard_mntns_id(key.mntns_id))
		return 0;
	/* args[] is a zero-length array in vmlinux.h: index it without CO-RE. */
	key.syscall = (__u32)((const __u64 *)ctx)[1];
	count = bpf_map_lookup_elem(&stats_syscalls, &key);
	if (count)
		__sync_fetch_and_add(&count->count, 1);
	else
		bpf_map_update_elem(&stats_syscalls, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
