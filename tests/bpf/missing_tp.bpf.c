// SPDX-License-Identifier: GPL-2.0
/* Test gadget: attaches to a tracepoint that no kernel has. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event { __u32 pid; };

GADGET_TRACER_MAP(print_events, event, 4096);

SEC("tracepoint/syscalls/sys_enter_gadgetd_nonexistent")
int missing_tp(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
