// SPDX-License-Identifier: GPL-2.0
/*
 * metrics_syscalls: system calls counted per syscall, command and mount
 * namespace (container), kept in a map iterator whose value is a
 * gadget_counter__u64: `gadgetctl run metrics_syscalls --detach --metrics`
 * exports it as the Prometheus counter syscalls_calls_total.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

struct syscall_key {
	gadget_mntns_id mntns_id;
	gadget_syscall syscall;
	char comm[TASK_COMM_LEN];
};

struct syscall_count {
	gadget_counter__u64 calls;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct syscall_key);
	__type(value, struct syscall_count);
} syscall_counts SEC(".maps");

GADGET_MAPITER(syscalls, syscall_counts);
/* Metrics are totals since the run started: a read never clears them. */
GADGET_STATS_KEEP();

SEC("raw_tracepoint/sys_enter")
int metrics_syscalls_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct syscall_key key = {};
	struct syscall_count zero = {}, *count;

	if (gadget_should_discard_data_current())
		return 0;
	key.mntns_id = gadget_get_current_mntns_id();
	key.syscall = ctx->args[1];
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	count = bpf_map_lookup_or_try_init(&syscall_counts, &key, &zero);
	if (count)
		__sync_fetch_and_add(&count->calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
