// SPDX-License-Identifier: GPL-2.0
/* Bad input: a tracer marker naming a map the object does not have. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

struct event {
	__u32 pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(open, no_such_map, event);

char LICENSE[] SEC("license") = "GPL";
