// SPDX-License-Identifier: GPL-2.0
/*
 * metrics_openat_latency: openat(2) latency per command and mount
 * namespace (container) as a log2 histogram of microseconds (an array of
 * gadget_histogram_slot__u32: slot i counts calls that took [2^i, 2^(i+1))
 * µs, slot 0 also those under 1 µs). `gadgetctl run metrics_openat_latency
 * --detach --metrics` exports it as the Prometheus histogram
 * openat_latency (buckets in microseconds) (_bucket{le}, _sum, _count).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

#define SLOTS 27

struct latency_key {
	gadget_mntns_id mntns_id;
	char comm[TASK_COMM_LEN];
};

struct latency {
	gadget_histogram_slot__u32 latency[SLOTS]; /* microseconds, log2 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct latency_key);
	__type(value, struct latency);
} openat_latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} started SEC(".maps");

GADGET_MAPITER(openat, openat_latency);
GADGET_STATS_KEEP();

SEC("tracepoint/syscalls/sys_enter_openat")
int metrics_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 now = bpf_ktime_get_ns();

	if (gadget_should_discard_data_current())
		return 0;
	bpf_map_update_elem(&started, &tid, &now, BPF_ANY);
	return 0;
}

static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 slot = 0;

	for (int i = 0; i < SLOTS - 1; i++) {
		if (v < 2)
			break;
		v >>= 1;
		slot++;
	}
	return slot;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int metrics_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *start = bpf_map_lookup_elem(&started, &tid);
	struct latency_key key = {};
	static const struct latency zero;
	struct latency *hist;
	__u32 slot;

	if (!start)
		return 0;
	slot = log2_slot((bpf_ktime_get_ns() - *start) / 1000);
	bpf_map_delete_elem(&started, &tid);
	key.mntns_id = gadget_get_current_mntns_id();
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	hist = bpf_map_lookup_or_try_init(&openat_latency, &key, &zero);
	if (hist && slot < SLOTS)
		__sync_fetch_and_add(&hist->latency[slot], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
