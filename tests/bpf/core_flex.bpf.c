// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: CO-RE relocations aya-obj 0.3 cannot resolve by itself.
 *  - `ctx->args[N]` of `struct syscall_trace_enter` (a flexible array, access
 *    string 0:2:N) in a syscall tracepoint, as Inspektor Gadget's tracers write it;
 *  - `ctx->args[1]` of `struct bpf_raw_tracepoint_args` (0:0:1) in a raw tracepoint;
 *  - bpf_core_type_matches() (relocation kind 12), true and false. clang 14
 *    cannot emit kind 12 (clang 15 can): the types checked end in `___tm`, are
 *    written as bpf_core_type_exists() (kind 8), and tests/bpf/core_kind12.py
 *    turns their relocations into kind 12, byte for byte what clang 15 emits.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <gadget/types.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	/* 1: sys_enter_openat tracepoint, 2: sys_enter raw tracepoint */
	__u32 source;
	__u64 nr;
	__u64 flags;
	__u64 mode;
	/* bpf_core_type_matches() of task_struct___tm, ...mismatch___tm, gadgetd_absent_type___tm */
	__u8 matches_task;
	__u8 matches_mismatch;
	__u8 matches_absent;
	__u8 exists_task;
	__u8 fname[64];
};

/*
 * Matches: the kernel's task_struct has int (pid_t) `pid` and `tgid`, and a
 * `struct mm_struct *mm`. (A `char comm[16]` would not match: clang encodes
 * `char` as signed, the kernel's BTF as unsigned, and libbpf compares that.)
 */
struct task_struct___tm {
	int pid;
	int tgid;
	struct mm_struct *mm;
} __attribute__((preserve_access_index));

/* `pid` is an int in the kernel: a long is no match. */
struct task_struct___mismatch___tm {
	long pid;
} __attribute__((preserve_access_index));

/* No such type in the kernel. */
struct gadgetd_absent_type___tm {
	int nothing_here;
} __attribute__((preserve_access_index));

const volatile pid_t targ_pid = 0;
/* The raw tracepoint reports only this syscall number. */
const volatile __u64 targ_nr = 0;

GADGET_TRACER_MAP(print_events, event, 256 * 1024);

SEC("tracepoint/syscalls/sys_enter_openat")
int flex_enter_openat(struct syscall_trace_enter *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *ev;

	if (targ_pid != pid)
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = pid;
	ev->source = 1;
	ev->nr = ctx->nr;
	ev->flags = ctx->args[2];
	ev->mode = ctx->args[3];
	/* bpf_core_type_matches() once core_kind12.py has run */
	ev->matches_task = bpf_core_type_exists(struct task_struct___tm);
	ev->matches_mismatch = bpf_core_type_exists(struct task_struct___mismatch___tm);
	ev->matches_absent = bpf_core_type_exists(struct gadgetd_absent_type___tm);
	ev->exists_task = bpf_core_type_exists(struct task_struct);
	bpf_probe_read_user_str(ev->fname, sizeof(ev->fname), (const char *)ctx->args[1]);
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

SEC("raw_tp/sys_enter")
int flex_raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *ev;

	if (targ_pid != pid || ctx->args[1] != targ_nr)
		return 0;
	ev = gadget_reserve_buf(print_events, sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->pid = pid;
	ev->source = 2;
	ev->nr = ctx->args[1];
	gadget_submit_buf(ctx, print_events, ev, sizeof(*ev));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
