// SPDX-License-Identifier: GPL-2.0
/* A hist_ map whose key is not a slot number. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>

struct odd_key {
	__u32 a;
	__u32 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct odd_key);
	__type(value, __u64);
} hist_odd SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int bad_hist(void *ctx)
{
	struct odd_key k = {};
	__u64 one = 1;

	bpf_map_update_elem(&hist_odd, &k, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
