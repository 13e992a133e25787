// SPDX-License-Identifier: GPL-2.0
/* Bad input: a print_ map whose value type and tracer marker disagree. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

struct seed_event {
	__u32 pid;
};

struct ig_event {
	__u64 pid;
};

GADGET_TRACER_MAP(print_events, seed_event, 4096);
GADGET_TRACER(open, print_events, ig_event);

char LICENSE[] SEC("license") = "GPL";
