/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * User stacks, with Inspektor Gadget's names. With --collect-ustack (the
 * parameter collect_ustack) gadget_get_user_stack*() records the current
 * user stack in the map ig_ustack and fills a struct gadget_user_stack
 * (gadget/types.h) with its id and what identifies the executable and the
 * process; without it the struct is left zeroed and nothing is recorded.
 *
 *   gadget_get_user_stack(ctx, &event->ustack);                  // kprobe, uprobe, perf_event
 *   gadget_get_user_stack_from_tracepoint(ctx, &event->ustack);  // tracepoints
 *
 * OpenTelemetry correlation ids are not collected (the field stays 0).
 */
#ifndef __GADGET_USER_STACK_MAP_H
#define __GADGET_USER_STACK_MAP_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <gadget/types.h>
#include <gadget/macros.h>
#include <gadget/core_fixes.bpf.h>

const volatile bool collect_ustack = false;
GADGET_PARAM(collect_ustack);

#define GADGET_USER_MAX_STACK_DEPTH 127
#define GADGET_USER_STACK_MAP_MAX_ENTRIES 10000

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_USER_MAX_STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, GADGET_USER_STACK_MAP_MAX_ENTRIES);
} ig_ustack SEC(".maps");

/* inode::i_mtime became __i_mtime in 6.6 and i_mtime_sec/i_mtime_nsec in 6.11. */
struct inode___mtime_v66 {
	struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

struct inode___mtime_v611 {
	struct timespec64 __i_mtime;
} __attribute__((preserve_access_index));

struct inode___mtime_now {
	time64_t i_mtime_sec;
	u32 i_mtime_nsec;
} __attribute__((preserve_access_index));

/* The modification time of an inode, on any kernel since 4.18. */
static __always_inline void gadget_inode_get_mtime(struct inode *inode, __u64 *mtime_sec,
						   __u32 *mtime_nsec)
{
	struct inode___mtime_now *now = (void *)inode;
	struct inode___mtime_v611 *v611 = (void *)inode;
	struct inode___mtime_v66 *v66 = (void *)inode;

	if (bpf_core_field_exists(now->i_mtime_sec)) {
		*mtime_sec = BPF_CORE_READ(now, i_mtime_sec);
		*mtime_nsec = BPF_CORE_READ(now, i_mtime_nsec);
	} else if (bpf_core_field_exists(v611->__i_mtime)) {
		*mtime_sec = BPF_CORE_READ(v611, __i_mtime.tv_sec);
		*mtime_nsec = BPF_CORE_READ(v611, __i_mtime.tv_nsec);
	} else {
		*mtime_sec = BPF_CORE_READ(v66, i_mtime.tv_sec);
		*mtime_nsec = BPF_CORE_READ(v66, i_mtime.tv_nsec);
	}
}

/* FNV-1a over the 8 bytes of `v`, continuing from `hash`. */
static __always_inline __u32 __gadget_fnv1a_u64(__u32 hash, __u64 v)
{
	for (int i = 0; i < 8; i++) {
		hash ^= (__u8)(v >> (8 * i));
		hash *= 16777619U;
	}
	return hash;
}

/* Changes whenever the process's address-space layout does (at execve). */
static __always_inline __u32 gadget_get_base_addr_hash(struct task_struct *task)
{
	__u32 hash = 2166136261U;

	hash = __gadget_fnv1a_u64(hash, (__u64)BPF_CORE_READ(task, mm));
	hash = __gadget_fnv1a_u64(hash, BPF_CORE_READ(task, mm, start_code));
	hash = __gadget_fnv1a_u64(hash, BPF_CORE_READ(task, mm, start_stack));
	return hash;
}

static __always_inline void __gadget_fill_user_stack(void *ctx, struct gadget_user_stack *ustack)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct inode *exe;
	struct pid *thread_pid;
	struct upid *numbers;
	unsigned int level;
	dev_t dev;

	__builtin_memset(ustack, 0, sizeof(*ustack));
	if (!collect_ustack)
		return;

	ustack->boot_timestamp = bpf_ktime_get_boot_ns();
	ustack->stack_id = bpf_get_stackid(ctx, &ig_ustack, BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP);

	exe = BPF_CORE_READ(task, mm, exe_file, f_inode);
	if (exe) {
		dev = BPF_CORE_READ(exe, i_sb, s_dev);
		ustack->major = dev >> 20;
		ustack->minor = dev & ((1U << 20) - 1);
		ustack->inode = BPF_CORE_READ(exe, i_ino);
		gadget_inode_get_mtime(exe, &ustack->mtime_sec, &ustack->mtime_nsec);
	}
	ustack->base_addr_hash = gadget_get_base_addr_hash(task);

	thread_pid = BPF_CORE_READ(task, thread_pid);
	level = BPF_CORE_READ(thread_pid, level);
	numbers = (struct upid *)&thread_pid->numbers;
	ustack->tgid_level0 = BPF_CORE_READ(task, tgid);
	ustack->pid_level0 = BPF_CORE_READ(numbers, nr);
	ustack->pidns_level0 = BPF_CORE_READ(numbers, ns, ns.inum);
	if (level >= 1) {
		ustack->pid_level1 = BPF_CORE_READ(numbers + 1, nr);
		ustack->pidns_level1 = BPF_CORE_READ(numbers + 1, ns, ns.inum);
	}
}

/* For BPF_PROG_TYPE_KPROBE programs (kprobe, kretprobe, uprobe, uretprobe). */
static __always_inline void gadget_get_user_stack_from_kprobe(void *ctx,
							      struct gadget_user_stack *ustack)
{
	__gadget_fill_user_stack(ctx, ustack);
}

/* For SEC("perf_event") programs. */
static __always_inline void gadget_get_user_stack_from_perf_event(void *ctx,
								  struct gadget_user_stack *ustack)
{
	__gadget_fill_user_stack(ctx, ustack);
}

/* For tracepoints and raw tracepoints. */
static __always_inline void gadget_get_user_stack_from_tracepoint(void *ctx,
								  struct gadget_user_stack *ustack)
{
	__gadget_fill_user_stack(ctx, ustack);
}

/* Picks the variant by the static type of ctx (pt_regs or perf event data). */
#define gadget_get_user_stack(ctx, ustack)                                             \
	_Generic((ctx),                                                                \
		struct bpf_perf_event_data *: gadget_get_user_stack_from_perf_event,   \
		struct pt_regs *: gadget_get_user_stack_from_kprobe)((ctx), (ustack))

#endif /* __GADGET_USER_STACK_MAP_H */
