// SPDX-License-Identifier: GPL-2.0
/*
 * Test gadget: program sections spelled as libbpf reads them, which aya-obj
 * 0.3 alone rejects or does not know: `tp/`, `raw_tp.w/`, `tp_btf/` and
 * `socket1`. Each program reports which one ran.
 */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/buffer.h>

struct event {
	__u32 pid;
	/* 1: tp/, 2: raw_tp.w/, 3: tp_btf/, 4: socket1 */
	__u32 source;
	__u64 value;
};

const volatile pid_t targ_pid = 0;
const volatile __u64 targ_nr = 0;
/* The socket filter reports packets of exactly this length. */
const volatile __u32 targ_len = 0;

GADGET_TRACER_MAP(print_events, event, 64 * 1024);

static __always_inline void emit(__u32 pid, __u32 source, __u64 value)
{
	struct event *ev = gadget_reserve_buf(print_events, sizeof(*ev));

	if (!ev)
		return;
	ev->pid = pid;
	ev->source = source;
	ev->value = value;
	gadget_submit_buf(NULL, print_events, ev, sizeof(*ev));
}

static __always_inline __u32 own_pid(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	return pid == targ_pid ? pid : 0;
}

SEC("tp/syscalls/sys_enter_getcwd")
int sec_tp(void *ctx)
{
	__u32 pid = own_pid();

	if (pid)
		emit(pid, 1, 0);
	return 0;
}

SEC("raw_tp.w/sys_enter")
int sec_raw_tp_w(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 pid = own_pid();

	if (pid && ctx->args[1] == targ_nr)
		emit(pid, 2, ctx->args[1]);
	return 0;
}

SEC("tp_btf/sys_enter")
int sec_tp_btf(__u64 *ctx)
{
	__u32 pid = own_pid();

	/* sys_enter(struct pt_regs *regs, long id) */
	if (pid && ctx[1] == targ_nr)
		emit(pid, 3, ctx[1]);
	return 0;
}

SEC("socket1")
int sec_socket1(struct __sk_buff *skb)
{
	if (skb->len == targ_len)
		emit(0, 4, skb->len);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
