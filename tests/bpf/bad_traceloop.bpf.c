// SPDX-License-Identifier: GPL-2.0
/*
 * Not the traceloop ABI, though it has a `map_of_perf_buffers`: a plain
 * hash instead of a hash of perf event arrays, and no record types. The
 * agent must say what is off (tests/tests/traceloop.rs).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u32);
} map_of_perf_buffers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__type(key, __u64);
	__type(value, __u64[6]);
} syscalls SEC(".maps");

SEC("raw_tracepoint/sys_enter")
int bad_traceloop_enter(void *ctx)
{
	__u64 key = 0;

	return bpf_map_lookup_elem(&map_of_perf_buffers, &key) != 0;
}

char LICENSE[] SEC("license") = "GPL";
