// SPDX-License-Identifier: GPL-2.0
/*
 * A metric map whose histogram member is a single number, not an array of
 * buckets: loading it must fail naming the map and field
 * (tests/tests/metrics.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

struct bad_key {
	__u32 pid;
};

struct bad_value {
	gadget_histogram_slot__u32 latency;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct bad_key);
	__type(value, struct bad_value);
} bad_hist SEC(".maps");

GADGET_MAPITER(bad, bad_hist);

SEC("tracepoint/syscalls/sys_enter_getpid")
int bad_metrics_getpid(void *ctx)
{
	struct bad_key k = { .pid = bpf_get_current_pid_tgid() >> 32 };
	struct bad_value zero = {}, *v = bpf_map_lookup_or_try_init(&bad_hist, &k, &zero);

	if (v)
		__sync_fetch_and_add(&v->latency, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
