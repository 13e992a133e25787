// SPDX-License-Identifier: GPL-2.0
/* Test gadget: a print_ map of a type no tracer can use. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>

struct event { __u32 pid; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, struct event);
} print_events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int bad_map(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
