// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: uprobe targets as users write them (a bare library name, a
 * soname, a full path, a versioned symbol, a symbol plus offset), a uprobe
 * on a library this host does not have (skipped, not fatal) and a program
 * disabled with Inspektor Gadget's `gadget_program_disabled`.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	/* 1 getpid, 2 getppid, 3 getuid, 4 getgid, 5 getegid, 6 absent, 7 disabled */
	__u32 probe;
};

const volatile pid_t targ_pid = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

static __always_inline int emit(void *ctx, __u32 probe)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *ev;

	if (pid != targ_pid)
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->probe = probe;
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

SEC("uprobe/libc:getpid")
int up_bare_name(void *ctx) { return emit(ctx, 1); }

SEC("uprobe/libc.so.6:getppid")
int up_soname(void *ctx) { return emit(ctx, 2); }

SEC("uprobe//lib/x86_64-linux-gnu/libc.so.6:getuid")
int up_full_path(void *ctx) { return emit(ctx, 3); }

SEC("uprobe/libc:getgid@@GLIBC_2.2.5")
int up_versioned(void *ctx) { return emit(ctx, 4); }

SEC("uprobe/libc:getegid+0x0")
int up_offset(void *ctx) { return emit(ctx, 5); }

SEC("uprobe/libgadgetd_absent.so.7:nothing")
int up_absent(void *ctx) { return emit(ctx, 6); }

SEC("uprobe/libc:gadget_program_disabled")
int up_disabled(void *ctx) { return emit(ctx, 7); }

char LICENSE[] SEC("license") = "GPL";
