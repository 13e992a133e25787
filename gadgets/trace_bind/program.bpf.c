// SPDX-License-Identifier: GPL-2.0
/*
 * trace_bind: every bind(2) of an IPv4 or IPv6 socket with its result, from
 * the syscall tracepoints (no kprobes needed). One data source, `bind`.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define AF_INET 2
#define AF_INET6 10

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;

	struct gadget_l4endpoint_t addr; /* printed as 127.0.0.1:80 or [::1]:80 */
	__u32 fd;
	gadget_errno error_raw; /* 0, or the errno of a failed bind */
};

/* What sys_enter saw, until sys_exit has the result. */
struct args_t {
	const void *addr;
	__u32 fd;
};

/* Only failed binds (--failed). */
const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

/* Pending binds by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(bind, events, event);

SEC("tracepoint/syscalls/sys_enter_bind")
int ig_bind_e(struct syscall_trace_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t args = {};

	if (gadget_should_discard_data_current())
		return 0;
	args.fd = (__u32)ctx->args[0];
	args.addr = (const void *)ctx->args[1];
	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int ig_bind_x(struct syscall_trace_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t *args = bpf_map_lookup_elem(&start, &tid);
	struct event *event;
	__u16 family = 0, port = 0;
	long ret;

	if (!args)
		return 0;
	ret = ctx->ret;
	if (targ_failed && ret >= 0)
		goto cleanup;
	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		goto cleanup;
	__builtin_memset(&event->addr, 0, sizeof(event->addr));
	/* struct sockaddr_in / sockaddr_in6: family, port, then the address. */
	bpf_probe_read_user(&family, sizeof(family), args->addr);
	bpf_probe_read_user(&port, sizeof(port), args->addr + 2);
	event->addr.port = bpf_ntohs(port);
	if (family == AF_INET) {
		event->addr.version = 4;
		bpf_probe_read_user(&event->addr.addr_raw.v4, 4, args->addr + 4);
	} else if (family == AF_INET6) {
		event->addr.version = 6;
		bpf_probe_read_user(&event->addr.addr_raw.v6, 16, args->addr + 8);
	}
	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->fd = args->fd;
	event->error_raw = ret >= 0 ? 0 : -ret;
	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
