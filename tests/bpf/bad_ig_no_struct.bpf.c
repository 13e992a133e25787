// SPDX-License-Identifier: GPL-2.0
/* Bad input: a tracer marker naming a struct the object does not define. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(open, events, no_such_event);

char LICENSE[] SEC("license") = "GPL";
