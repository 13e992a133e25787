// SPDX-License-Identifier: GPL-2.0
/*
 * Metrics declared in gadget.yaml instead of by type: map iterator `annot`
 * has plain __u64 members that the definition annotates (metrics.type
 * counter / gauge, metrics.unit), and map iterator `getpids` has a plain
 * integer value, ebpf_exporter's layout (key fields are labels, the value
 * a counter) with metrics.collect: true. Both count getpid(2) per process.
 * Map iterator `getpid_ordinals` is ebpf_exporter's histogram layout: the
 * key's `bucket` is an exp2 bucket index (the n-th getpid of a process goes
 * to bucket ceil(log2(n))) and the value that bucket's count
 * (tests/tests/metrics.rs writes the gadget.yaml).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/macros.h>
#include <gadget/maps.bpf.h>
#include <gadget/types.h>

struct annot_key {
	gadget_pid pid;
	char comm[TASK_COMM_LEN];
};

struct annot_value {
	__u64 calls;
	__u64 size;
	char last[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct annot_key);
	__type(value, struct annot_value);
} annot_map SEC(".maps");

struct getpid_key {
	gadget_pid pid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct getpid_key);
	__type(value, __u64);
} getpid_map SEC(".maps");

struct ordinal_key {
	gadget_pid pid;
	__u32 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ordinal_key);
	__type(value, __u64);
} ordinal_hist SEC(".maps");

GADGET_MAPITER(getpid_ordinals, ordinal_hist);
GADGET_MAPITER(annot, annot_map);
GADGET_MAPITER(getpids, getpid_map);
GADGET_STATS_KEEP();

SEC("tracepoint/syscalls/sys_enter_getpid")
int metrics_annotated_getpid(void *ctx)
{
	struct annot_key key = { .pid = bpf_get_current_pid_tgid() >> 32 };
	struct getpid_key pkey = { .pid = key.pid };
	struct annot_value zero = {}, *v;
	__u64 one = 0, *n;

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	v = bpf_map_lookup_or_try_init(&annot_map, &key, &zero);
	if (v) {
		__sync_fetch_and_add(&v->calls, 1);
		__sync_fetch_and_add(&v->size, 4096);
	}
	n = bpf_map_lookup_or_try_init(&getpid_map, &pkey, &one);
	if (!n)
		return 0;
	__u64 ordinal = __sync_fetch_and_add(n, 1) + 1;
	struct ordinal_key okey = { .pid = key.pid };
	while (okey.bucket < 63 && (1ULL << okey.bucket) < ordinal)
		okey.bucket++;
	__u64 *c = bpf_map_lookup_or_try_init(&ordinal_hist, &okey, &one);
	if (c)
		__sync_fetch_and_add(c, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
