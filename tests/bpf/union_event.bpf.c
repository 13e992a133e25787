// SPDX-License-Identifier: GPL-2.0
/* Test gadget: an event with a union, which cannot be decoded generically. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	union { __u32 a; float b; } u;
};

GADGET_TRACER_MAP(print_events, event, 4096);

SEC("tracepoint/syscalls/sys_enter_openat")
int union_event(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
