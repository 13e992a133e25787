// SPDX-License-Identifier: GPL-2.0
/*
 * traceloop: a syscall flight recorder. Every syscall of the recorded mount
 * namespaces goes into that namespace's overwritable perf buffer, so the
 * buffer always holds the latest ones; they are read, put together and
 * printed when the run stops (Ctrl-C, --timeout, gadgetctl stop).
 *
 * The ABI is Inspektor Gadget's traceloop, which gadgetd's traceloop
 * operator speaks (docs/gadget-kinds.md#traceloop): the agent fills
 * `map_of_perf_buffers` (mount namespace -> perf event array), the
 * `syscalls` rules (which arguments point at something worth copying, and
 * how long it is) and `--syscall-filters`. Per syscall the buffer gets
 *   - an enter record (struct syscall_event_t): number, six arguments,
 *     pid, comm, CPU, timestamps;
 *   - one continuation record (struct syscall_event_cont_t) per copied
 *     argument, at entry or, for buffers the kernel fills, at exit;
 *   - an exit record with the return value in args[0].
 * All three carry the enter's monotonic timestamp, which ties them together.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include <gadget/mntns.h>
#include <gadget/mntns_filter.h>

#define ARGS 6
#define PARAM_LEN 128
#define MAX_FILTERS 16

/* The length rules of `syscalls` (set by the agent). */
const __u64 PARAM_PROBE_AT_EXIT_MASK = 0xf000000000000000ULL;
const __u64 USE_RET_AS_PARAM_LENGTH = 0x0ffffffffffffffeULL;
const __u64 USE_NULL_BYTE_LENGTH = 0x0fffffffffffffffULL;
const __u64 USE_ARG_INDEX_AS_PARAM_LENGTH = 0x0ffffffffffffff0ULL;
const __u64 USE_ARG_INDEX_AS_PARAM_LENGTH_MASK = 0xfULL;

enum event_type {
	SYSCALL_EVENT_TYPE_ENTER = 0,
	SYSCALL_EVENT_TYPE_EXIT = 1,
	SYSCALL_EVENT_TYPE_CONT = 2,
};

/* 160 bytes, like syscall_event_cont_t: the reader tells them apart by event_type. */
struct syscall_event_t {
	enum event_type event_type;
	__u64 args[ARGS]; /* exit: args[0] is the return value */
	__u64 monotonic_timestamp;
	__u64 boot_timestamp;
	__u32 pid;
	__u16 cpu;
	__u16 id;
	__u8 comm[TASK_COMM_LEN];
	__u8 cont_nr;
	__u8 padding[60];
};

struct syscall_event_cont_t {
	enum event_type event_type;
	__u8 param[PARAM_LEN];
	__u64 monotonic_timestamp;
	__u64 length; /* bytes copied, or USE_NULL_BYTE_LENGTH for a string */
	__u8 index;
	__u8 failed;
};

_Static_assert(sizeof(struct syscall_event_t) == 160, "enter/exit record size");
_Static_assert(sizeof(struct syscall_event_cont_t) == 160, "continuation record size");

struct syscall_def_t {
	__u64 args_len[ARGS];
};

/* What sys_exit needs of the call's entry. */
struct in_flight {
	__u64 monotonic_timestamp;
	__u64 args[ARGS];
};

/* Keeps both record types in the object's BTF for the agent to check. */
const struct syscall_event_t *unused_event __attribute__((unused));
const struct syscall_event_cont_t *unused_event_cont __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(key_size, sizeof(__u64)); /* mount namespace inode */
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, 1024);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
		__uint(key_size, sizeof(__u32));
		__uint(value_size, sizeof(__u32));
	});
} map_of_perf_buffers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u64)); /* syscall number */
	__uint(value_size, sizeof(struct syscall_def_t));
	__uint(max_entries, 32);
} syscalls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u64)); /* pid_tgid */
	__uint(value_size, sizeof(struct in_flight));
	__uint(max_entries, 1024);
} in_flight SEC(".maps");

/* One record under construction per CPU (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct syscall_event_t));
	__uint(max_entries, 1);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u64));
	__uint(value_size, sizeof(bool));
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_FILTERS);
} syscall_filters SEC(".maps");

/* Present (key 0) when --syscall-filters names syscalls. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, bool);
} syscall_enable_filters SEC(".maps");

#if defined(__TARGET_ARCH_x86)
#define NR_RT_SIGRETURN 15
#define NR_EXIT 60
#define NR_EXIT_GROUP 231
#elif defined(__TARGET_ARCH_arm64)
#define NR_RT_SIGRETURN 139
#define NR_EXIT 93
#define NR_EXIT_GROUP 94
#else
#error "traceloop: x86 and arm64 only"
#endif

static __always_inline bool filtered_out(__u64 nr)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&syscall_enable_filters, &zero) &&
	       !bpf_map_lookup_elem(&syscall_filters, &nr);
}

static __always_inline __u64 syscall_arg(struct pt_regs *regs, int i)
{
	switch (i) {
	case 0:
		return PT_REGS_PARM1_CORE_SYSCALL(regs);
	case 1:
		return PT_REGS_PARM2_CORE_SYSCALL(regs);
	case 2:
		return PT_REGS_PARM3_CORE_SYSCALL(regs);
	case 3:
		return PT_REGS_PARM4_CORE_SYSCALL(regs);
	case 4:
		return PT_REGS_PARM5_CORE_SYSCALL(regs);
	default:
		return PT_REGS_PARM6_CORE_SYSCALL(regs);
	}
}

static __always_inline void *zeroed_scratch(void)
{
	__u32 zero = 0;
	void *buf = bpf_map_lookup_elem(&scratch, &zero);

	if (buf)
		__builtin_memset(buf, 0, sizeof(struct syscall_event_t));
	return buf;
}

/*
 * Emits the continuation record of argument `i` (pointing at `ptr`) by
 * rule `rule` (the probe-at-exit bit already cleared); `args` and `ret`
 * resolve the length rules that refer to them.
 */
static __always_inline void emit_cont(void *ctx, void *buffer, __u64 ts, int i,
				      __u64 rule, __u64 ptr, const __u64 *args,
				      long ret)
{
	struct syscall_event_cont_t *c = zeroed_scratch();
	bool string = false;
	__u64 len = rule;

	if (!c)
		return;
	if (rule == USE_NULL_BYTE_LENGTH) {
		string = true;
	} else if (rule == USE_RET_AS_PARAM_LENGTH) {
		len = ret < 0 ? 0 : ret;
	} else if (rule >= USE_ARG_INDEX_AS_PARAM_LENGTH) {
		__u64 at = rule & USE_ARG_INDEX_AS_PARAM_LENGTH_MASK;

		len = at < ARGS ? args[at & 7] : PARAM_LEN;
	}
	if (len > PARAM_LEN)
		len = PARAM_LEN;

	c->event_type = SYSCALL_EVENT_TYPE_CONT;
	c->monotonic_timestamp = ts;
	c->index = i;
	c->length = string ? USE_NULL_BYTE_LENGTH : len;
	if (string) {
		if (bpf_probe_read_user_str(c->param, PARAM_LEN, (void *)ptr) < 0)
			c->failed = 1;
	} else if (len > 0) {
		/* Exactly `len` bytes: what follows them is no business of ours. */
		__u32 n = len;

		if (n > PARAM_LEN)
			n = PARAM_LEN;
		if (bpf_probe_read_user(c->param, n, (void *)ptr))
			c->failed = 1;
	}
	bpf_perf_event_output(ctx, buffer, BPF_F_CURRENT_CPU, c, sizeof(*c));
}

SEC("raw_tracepoint/sys_enter")
int traceloop_enter(struct bpf_raw_tracepoint_args *ctx)
{
	/* args[] is a zero-length array in vmlinux.h: index it without CO-RE. */
	struct pt_regs *regs = (struct pt_regs *)((const __u64 *)ctx)[0];
	__u64 nr = ((const __u64 *)ctx)[1];
	__u64 mntns_id = gadget_get_current_mntns_id();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct in_flight call = {};
	struct syscall_def_t *def;
	struct syscall_event_t *ev;
	void *buffer;
	int i;

	if (filtered_out(nr))
		return 0;
	buffer = bpf_map_lookup_elem(&map_of_perf_buffers, &mntns_id);
	if (!buffer)
		return 0;
	ev = zeroed_scratch();
	if (!ev)
		return 0;
	def = bpf_map_lookup_elem(&syscalls, &nr);

	call.monotonic_timestamp = bpf_ktime_get_ns();
	ev->event_type = SYSCALL_EVENT_TYPE_ENTER;
	ev->monotonic_timestamp = call.monotonic_timestamp;
	ev->boot_timestamp = bpf_ktime_get_boot_ns();
	ev->pid = pid_tgid >> 32;
	ev->cpu = bpf_get_smp_processor_id();
	ev->id = nr;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
#pragma unroll
	for (i = 0; i < ARGS; i++) {
		call.args[i] = syscall_arg(regs, i);
		ev->args[i] = call.args[i];
		if (def && def->args_len[i])
			ev->cont_nr++;
	}
	bpf_perf_event_output(ctx, buffer, BPF_F_CURRENT_CPU, ev, sizeof(*ev));

	/* exit, exit_group and rt_sigreturn never reach sys_exit. */
	if (nr != NR_EXIT && nr != NR_EXIT_GROUP && nr != NR_RT_SIGRETURN)
		bpf_map_update_elem(&in_flight, &pid_tgid, &call, BPF_ANY);
	if (!def)
		return 0;
#pragma unroll
	for (i = 0; i < ARGS; i++) {
		__u64 rule = def->args_len[i];

		if (!rule || (rule & PARAM_PROBE_AT_EXIT_MASK) ||
		    rule == USE_RET_AS_PARAM_LENGTH)
			continue;
		emit_cont(ctx, buffer, call.monotonic_timestamp, i, rule,
			  call.args[i], call.args, 0);
	}
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int traceloop_exit(struct bpf_raw_tracepoint_args *ctx)
{
	long ret = ((const __u64 *)ctx)[1];
	__u64 mntns_id = gadget_get_current_mntns_id();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct syscall_def_t *def;
	struct syscall_event_t *ev;
	struct in_flight call;
	struct in_flight *found;
	void *buffer;
	__u64 nr;
	int i;

	buffer = bpf_map_lookup_elem(&map_of_perf_buffers, &mntns_id);
	if (!buffer)
		return 0;
	found = bpf_map_lookup_elem(&in_flight, &pid_tgid);
	if (!found)
		return 0;
	call = *found;
	bpf_map_delete_elem(&in_flight, &pid_tgid);

#if defined(__TARGET_ARCH_x86)
	nr = BPF_CORE_READ((struct pt_regs *)((const __u64 *)ctx)[0], orig_ax);
#else
	nr = BPF_CORE_READ((struct pt_regs *)((const __u64 *)ctx)[0], syscallno);
#endif
	ev = zeroed_scratch();
	if (!ev)
		return 0;
	ev->event_type = SYSCALL_EVENT_TYPE_EXIT;
	ev->monotonic_timestamp = call.monotonic_timestamp;
	ev->boot_timestamp = bpf_ktime_get_boot_ns();
	ev->pid = pid_tgid >> 32;
	ev->cpu = bpf_get_smp_processor_id();
	ev->id = nr;
	ev->args[0] = ret;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_perf_event_output(ctx, buffer, BPF_F_CURRENT_CPU, ev, sizeof(*ev));

	def = bpf_map_lookup_elem(&syscalls, &nr);
	if (!def)
		return 0;
#pragma unroll
	for (i = 0; i < ARGS; i++) {
		__u64 rule = def->args_len[i];

		if (!(rule & PARAM_PROBE_AT_EXIT_MASK))
			continue;
		emit_cont(ctx, buffer, call.monotonic_timestamp, i,
			  rule & ~PARAM_PROBE_AT_EXIT_MASK, call.args[i],
			  call.args, ret);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
