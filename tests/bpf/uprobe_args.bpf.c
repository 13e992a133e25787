// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: BPF_UPROBE with six arguments and BPF_URETPROBE, the libbpf
 * 1.2/1.3 macros gadgets written for a current libbpf use (include/bpf/
 * bpf_tracing.h supplies them over Debian 12's libbpf 1.1). It records
 * mmap()'s six arguments and its return value for one process.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	__u32 probe; /* 1 entry, 2 return */
	__u64 addr;
	__u64 len;
	__s64 prot;
	__s64 flags;
	__s64 fd;
	__s64 off;
	__s64 ret;
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

static __always_inline struct event *reserve(void)
{
	struct event *ev;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return NULL;
	ev = gadget_reserve_buf(&print_events, sizeof(*ev));
	if (ev)
		__builtin_memset(ev, 0, sizeof(*ev));
	return ev;
}

SEC("uprobe/libc:mmap")
int BPF_UPROBE(up_mmap, void *addr, unsigned long len, int prot, int flags, int fd, long off)
{
	struct event *ev = reserve();

	if (!ev)
		return 0;
	ev->pid = targ_pid;
	ev->probe = 1;
	ev->addr = (__u64)addr;
	ev->len = len;
	ev->prot = prot;
	ev->flags = flags;
	ev->fd = fd;
	ev->off = off;
	gadget_submit_buf(ctx, &print_events, ev, sizeof(*ev));
	return 0;
}

SEC("uretprobe/libc:mmap")
int BPF_URETPROBE(upr_mmap, void *ret)
{
	struct event *ev = reserve();

	if (!ev)
		return 0;
	ev->pid = targ_pid;
	ev->probe = 2;
	ev->ret = (__s64)ret;
	gadget_submit_buf(ctx, &print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
