// SPDX-License-Identifier: GPL-2.0
/* Test gadget: a section gadgetd cannot attach (libbpf's ksyscall/). */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
};

GADGET_TRACER_MAP(print_events, event, 4096);

SEC("ksyscall/getcwd")
int bad_section_getcwd(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
