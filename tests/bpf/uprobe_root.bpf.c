// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: uprobes whose targets are resolved in a container's root
 * file system. `libc.so.6` is the container's own libc (through its own
 * ld.so.cache); the full path /usr/lib/x86_64-linux-gnu/libgadgetd_ctr.so.1
 * exists only in the container.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	/* 1: libc.so.6, 2: libgadgetd_ctr.so.1 */
	__u32 probe;
};

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

static __always_inline int emit(__u32 probe)
{
	struct event *ev = gadget_reserve_buf(&print_events, sizeof(*ev));

	if (!ev)
		return 0;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->probe = probe;
	gadget_submit_buf(NULL, &print_events, ev, sizeof(*ev));
	return 0;
}

SEC("uprobe/libc.so.6:clock_nanosleep")
int ctr_libc(void *ctx) { return emit(1); }

SEC("uprobe//usr/lib/x86_64-linux-gnu/libgadgetd_ctr.so.1:clock_nanosleep")
int ctr_only(void *ctx) { return emit(2); }

char LICENSE[] SEC("license") = "GPL";
