/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading kernel fields that were renamed or moved between kernel versions,
 * with CO-RE: each helper asks the running kernel's BTF (at load time)
 * which shape it has. The `___suffix` structs are local "flavors" of kernel
 * structs; libbpf and the agent match them by the name before `___`.
 */
#ifndef __GADGET_CORE_FIXES_BPF_H
#define __GADGET_CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

/*
 * Calling it makes the verifier reject the program: a branch that must be
 * dead on every kernel this gadget supports. (An invalid helper address.)
 */
static void (*bpf_core_unreachable)(void) = (void *)0xbad2310;

/* task_struct::state became __state (an unsigned int) in 5.14. */
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

struct task_struct___x {
	unsigned int __state;
} __attribute__((preserve_access_index));

/* The run state of a task (TASK_RUNNING is 0). */
static __always_inline __s64 get_task_state(void *task)
{
	struct task_struct___x *now = task;

	if (bpf_core_field_exists(now->__state))
		return BPF_CORE_READ(now, __state);
	return BPF_CORE_READ((struct task_struct___o *)task, state);
}

/* bio::bi_disk became bio::bi_bdev->bd_disk in 5.12. */
struct bio___o {
	struct gendisk *bi_disk;
} __attribute__((preserve_access_index));

struct bio___x {
	struct block_device *bi_bdev;
} __attribute__((preserve_access_index));

/* The disk a bio is for. */
static __always_inline struct gendisk *get_gendisk(void *bio)
{
	struct bio___x *now = bio;

	if (bpf_core_field_exists(now->bi_bdev))
		return BPF_CORE_READ(now, bi_bdev, bd_disk);
	return BPF_CORE_READ((struct bio___o *)bio, bi_disk);
}

/* The block_rq_complete tracepoint's struct was renamed block_rq_completion in 6.8. */
struct trace_event_raw_block_rq_complete___x {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
} __attribute__((preserve_access_index));

struct trace_event_raw_block_rq_completion___x {
	dev_t dev;
	sector_t sector;
	unsigned int nr_sector;
} __attribute__((preserve_access_index));

static __always_inline bool has_block_rq_completion(void)
{
	return bpf_core_type_exists(struct trace_event_raw_block_rq_completion___x);
}

/* request::rq_disk went away in 5.17: the disk is request::q->disk. */
struct request_queue___x {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request___x {
	struct request_queue___x *q;
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/* The disk a request is for. */
static __always_inline struct gendisk *get_disk(void *request)
{
	struct request___x *rq = request;

	if (bpf_core_field_exists(rq->rq_disk))
		return BPF_CORE_READ(rq, rq_disk);
	return BPF_CORE_READ(rq, q, disk);
}

/* renamedata gained old_mnt_userns in 5.12 (and lost it for old_mnt_idmap in 6.3). */
struct renamedata___x {
	struct user_namespace *old_mnt_userns;
} __attribute__((preserve_access_index));

static __always_inline bool renamedata_has_old_mnt_userns_field(void)
{
	return bpf_core_field_exists(struct renamedata___x, old_mnt_userns);
}

/* kmem tracepoints: kmem_free was split into kfree and kmem_cache_free in 5.19. */
struct trace_event_raw_kmem_free___x {
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kfree___x {
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_free___x {
	const void *ptr;
} __attribute__((preserve_access_index));

static __always_inline bool has_kfree(void)
{
	return bpf_core_type_exists(struct trace_event_raw_kfree___x);
}

static __always_inline bool has_kmem_cache_free(void)
{
	return bpf_core_type_exists(struct trace_event_raw_kmem_cache_free___x);
}

/*
 * tcp_retransmit_skb got its own tracepoint struct in 5.19 (before, it used
 * tcp_event_sk_skb's). Both are local flavors, so either vmlinux.h works.
 */
struct trace_event_raw_tcp_retransmit_skb___x {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

struct trace_event_raw_tcp_event_sk_skb___o {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
} __attribute__((preserve_access_index));

/* The skb of a tcp/tcp_retransmit_skb tracepoint context. */
static __always_inline const struct sk_buff *gadget_get_tcp_retransmit_skb_skbaddr(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb___x))
		return BPF_CORE_READ((struct trace_event_raw_tcp_retransmit_skb___x *)ctx, skbaddr);
	return BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb___o *)ctx, skbaddr);
}

/* The socket of a tcp/tcp_retransmit_skb tracepoint context. */
static __always_inline const struct sock *gadget_get_tcp_retransmit_skb_skaddr(void *ctx)
{
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb___x))
		return BPF_CORE_READ((struct trace_event_raw_tcp_retransmit_skb___x *)ctx, skaddr);
	return BPF_CORE_READ((struct trace_event_raw_tcp_event_sk_skb___o *)ctx, skaddr);
}

/* inode::i_ctime became __i_ctime in 6.6 and i_ctime_sec/i_ctime_nsec in 6.11. */
struct inode___older_v66 {
	struct timespec64 i_ctime;
};

struct inode___older_v611 {
	struct timespec64 __i_ctime;
};

/* Spelled out so the newest layout compiles against any vmlinux.h (arm64's is older). */
struct inode___v611 {
	time64_t i_ctime_sec;
	u32 i_ctime_nsec;
};

/* Since 6.13 the top bit of i_ctime_nsec is a flag, not part of the time. */
#define I_CTIME_QUERIED (1U << 31)

/* An inode's change time in nanoseconds since the epoch (0 if before it). */
static __always_inline u64 gadget_get_ctime_nanosec_from_inode(struct inode *inode)
{
	time64_t sec;
	long nsec;

	struct inode___v611 *v611_new = (void *)inode;

	if (bpf_core_field_exists(v611_new->i_ctime_sec) &&
	    bpf_core_field_exists(v611_new->i_ctime_nsec)) {
		sec = BPF_CORE_READ(v611_new, i_ctime_sec);
		nsec = BPF_CORE_READ(v611_new, i_ctime_nsec);
	} else if (bpf_core_field_exists(((struct inode___older_v611 *)inode)->__i_ctime)) {
		struct inode___older_v611 *v611 = (void *)inode;

		sec = BPF_CORE_READ(v611, __i_ctime.tv_sec);
		nsec = BPF_CORE_READ(v611, __i_ctime.tv_nsec);
	} else {
		struct inode___older_v66 *v66 = (void *)inode;

		sec = BPF_CORE_READ(v66, i_ctime.tv_sec);
		nsec = BPF_CORE_READ(v66, i_ctime.tv_nsec);
	}
	if (sec < 0)
		return 0;
	return (u64)sec * 1000000000ULL + ((u32)nsec & ~I_CTIME_QUERIED);
}

/* The syscall number in a syscall's saved registers (-1 on unknown architectures). */
static __always_inline long gadget_get_syscall_nr(struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	return (long)BPF_CORE_READ(regs, syscallno);
#else
	return -1;
#endif
}

/* libbpf before 1.2 has no sixth-argument macro. */
#ifndef PT_REGS_PARM6_CORE_SYSCALL
#if defined(__TARGET_ARCH_x86)
#define PT_REGS_PARM6_CORE_SYSCALL(x) BPF_CORE_READ((struct pt_regs *)(x), r9)
#elif defined(__TARGET_ARCH_arm64)
#define PT_REGS_PARM6_CORE_SYSCALL(x) BPF_CORE_READ((struct pt_regs *)(x), regs[5])
#else
#define PT_REGS_PARM6_CORE_SYSCALL(x) 0
#endif
#endif

/* Argument `arg_id` (1 to 6) of a syscall from its saved registers; 0 otherwise. */
static __always_inline unsigned long gadget_get_syscall_arg(struct pt_regs *regs,
							    unsigned int arg_id)
{
	switch (arg_id) {
	case 1:
		return PT_REGS_PARM1_CORE_SYSCALL(regs);
	case 2:
		return PT_REGS_PARM2_CORE_SYSCALL(regs);
	case 3:
		return PT_REGS_PARM3_CORE_SYSCALL(regs);
	case 4:
		return PT_REGS_PARM4_CORE_SYSCALL(regs);
	case 5:
		return PT_REGS_PARM5_CORE_SYSCALL(regs);
	case 6:
		return PT_REGS_PARM6_CORE_SYSCALL(regs);
	}
	return 0;
}

#endif /* __GADGET_CORE_FIXES_BPF_H */
