// SPDX-License-Identifier: GPL-2.0
/*
 * metrics_inflight: system calls in progress now, per syscall, command and
 * mount namespace (container): a gadget_gauge__u64 that goes up at
 * sys_enter and down at sys_exit. Blocked reads, waits and sleeps show up
 * as non-zero. `gadgetctl run metrics_inflight --detach --metrics` exports
 * it as the Prometheus gauge syscalls_inflight_calls.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

struct inflight_key {
	gadget_mntns_id mntns_id;
	gadget_syscall syscall;
	char comm[TASK_COMM_LEN];
};

struct inflight {
	gadget_gauge__u64 calls;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct inflight_key);
	__type(value, struct inflight);
} inflight_calls SEC(".maps");

/* The key each thread entered with: its exit decrements that entry only
 * (a call that began before the run is never counted, never subtracted). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct inflight_key);
} entered SEC(".maps");

GADGET_MAPITER(syscalls_inflight, inflight_calls);

/* exit and exit_group never return: they are not "in progress". */
#if defined(__TARGET_ARCH_x86)
#define NR_EXIT 60
#define NR_EXIT_GROUP 231
#elif defined(__TARGET_ARCH_arm64)
#define NR_EXIT 93
#define NR_EXIT_GROUP 94
#else
#error "metrics_inflight: unknown __TARGET_ARCH (exit syscall numbers)"
#endif
GADGET_STATS_KEEP();

SEC("raw_tracepoint/sys_enter")
int metrics_inflight_enter(struct bpf_raw_tracepoint_args *ctx)
{
	struct inflight_key key = {};
	struct inflight zero = {}, *v;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	if (gadget_should_discard_data_current())
		return 0;
	key.mntns_id = gadget_get_current_mntns_id();
	key.syscall = ctx->args[1];
	if (key.syscall == NR_EXIT || key.syscall == NR_EXIT_GROUP)
		return 0;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	v = bpf_map_lookup_or_try_init(&inflight_calls, &key, &zero);
	if (!v)
		return 0;
	if (bpf_map_update_elem(&entered, &tid, &key, BPF_ANY) == 0)
		__sync_fetch_and_add(&v->calls, 1);
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int metrics_inflight_exit(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight_key *key = bpf_map_lookup_elem(&entered, &tid);
	struct inflight *v;

	if (!key)
		return 0;
	v = bpf_map_lookup_elem(&inflight_calls, key);
	if (v)
		__sync_fetch_and_sub(&v->calls, 1);
	bpf_map_delete_elem(&entered, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
