// SPDX-License-Identifier: GPL-2.0
/*
 * profile_cpu: where CPU time goes, by sampling every CPU (perf_event, CPU
 * clock). One data source, `samples`: a map iterator of samples per thread
 * and kernel stack, read and cleared every interval.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/stacks.h>
#include <gadget/types.h>

/* The key: which thread, and where the kernel was. */
struct task_key {
	gadget_pid pid;
	gadget_tid tid;
	gadget_mntns_id mntns_id;
	gadget_comm comm[TASK_COMM_LEN];
	/* Where the kernel was (negative: the sample hit user mode). */
	gadget_kernel_stack kstack;
};

/* The value: samples this interval. */
struct task_samples {
	__u64 samples;
	/* Samples that hit while the task ran in the kernel. */
	__u64 kernel;
};

/* 99 samples a second on every CPU; the idle task is never counted. */
GADGET_SAMPLE_HZ(99);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct task_key);
	__type(value, struct task_samples);
} stats SEC(".maps");

GADGET_MAPITER(samples, stats);

SEC("perf_event")
int ig_prof_cpu(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_key key;
	struct task_samples zero = {}, *s;
	bool in_kernel;

	if (!pid_tgid)
		return 0;
	if (gadget_should_discard_data_current())
		return 0;
	__builtin_memset(&key, 0, sizeof(key));
	key.mntns_id = gadget_get_current_mntns_id();
	key.pid = pid_tgid >> 32;
	key.tid = (__u32)pid_tgid;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
#if defined(__TARGET_ARCH_x86)
	/* The context allows only 8-byte loads of registers; cs's low bits are the ring. */
	in_kernel = (*(const __u64 *)((const char *)ctx + __builtin_offsetof(struct pt_regs, cs)) &
		     3) == 0;
#else
	in_kernel = false;
#endif
	key.kstack = in_kernel ? gadget_get_kernel_stack(ctx) : -1;
	s = bpf_map_lookup_elem(&stats, &key);
	if (!s) {
		bpf_map_update_elem(&stats, &key, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &key);
		if (!s)
			return 0;
	}
	__sync_fetch_and_add(&s->samples, 1);
	if (in_kernel)
		__sync_fetch_and_add(&s->kernel, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
