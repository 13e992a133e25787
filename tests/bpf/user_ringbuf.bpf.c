// SPDX-License-Identifier: GPL-2.0
/*
 * A user ring buffer (Linux 6.1), a map type aya 0.14 has no wrapper for
 * (tests/tests/loader.rs): user space writes it, so a gadget only needs it
 * created. The tracer beside it never sends: a gadget needs a data source.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} requests SEC(".maps");

struct idle_event {
	gadget_pid pid;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(idle, events, idle_event);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int user_ringbuf_idle(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
