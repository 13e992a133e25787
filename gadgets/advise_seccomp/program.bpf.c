// SPDX-License-Identifier: GPL-2.0
/*
 * advise_seccomp: which syscalls a workload makes, to build a seccomp
 * profile (`gadgetctl run advise_seccomp -o seccomp`). One data source,
 * `syscalls`: a `stats_` map (gadgetd's topper convention) kept for the
 * whole run with GADGET_STATS_KEEP(), since a profile needs every syscall
 * seen since the start, not one interval's. Select the workload with the
 * common filters (--comm, --pid, ...) or a container.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct syscall_key {
	gadget_mntns_id mntns_id;
	gadget_syscall syscall;
	gadget_comm comm[TASK_COMM_LEN];
};

struct syscall_count {
	__u64 count;
};

/* A profile needs every syscall seen since the start, not per interval. */
GADGET_STATS_KEEP();

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syscall_key);
	__type(value, struct syscall_count);
} stats_syscalls SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int ig_seccomp_e(struct bpf_raw_tracepoint_args *ctx)
{
	struct syscall_key key = {};
	struct syscall_count one = { .count = 1 }, *count;

	if (gadget_should_discard_data_current())
		return 0;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	key.mntns_id = gadget_get_current_mntns_id();
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
