// SPDX-License-Identifier: GPL-2.0
/* trace_bind: bind(2) calls with their address and result, from syscall tracepoints. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <gadget/types.h>
#include <gadget/mntns_filter.h>
#include <gadget/buffer.h>
#include <gadget/macros.h>

#define AF_INET 2
#define AF_INET6 10

struct event {
	gadget_timestamp timestamp;
	gadget_pid pid;
	gadget_uid uid;
	gadget_mntns_id mntns_id;
	gadget_errno ret;
	__u32 fd;
	struct gadget_l4endpoint_t addr;
	__u8 comm[TASK_COMM_LEN];
};

struct args_t {
	const void *addr;
	__u32 fd;
};

/* Only this process id (0: all). */
GADGET_PARAM(pid_t, targ_pid, 0);
/* Only failed binds. */
GADGET_PARAM(bool, targ_failed, false);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct args_t);
} start SEC(".maps");

GADGET_TRACER_MAP(print_events, event, 1024 * 1024);

SEC("tracepoint/syscalls/sys_enter_bind")
int trace_bind_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct args_t args = {};

	if (targ_pid && targ_pid != (pid_tgid >> 32))
		return 0;
	if (gadget_should_discard_mntns_id(gadget_get_mntns_id()))
		return 0;
	args.fd = (__u32)ctx->args[0];
	args.addr = (const void *)ctx->args[1];
	bpf_map_update_elem(&start, &pid_tgid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_bind")
int trace_bind_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct args_t *args = bpf_map_lookup_elem(&start, &pid_tgid);
	struct event *event;
	__u16 family = 0, port = 0;

	if (!args)
		return 0;
	if (targ_failed && ctx->ret >= 0)
		goto cleanup;
	event = gadget_reserve_buf(&print_events, sizeof(*event));
	if (!event)
		goto cleanup;
	__builtin_memset(&event->addr, 0, sizeof(event->addr));
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
	event->timestamp = bpf_ktime_get_boot_ns();
	event->pid = pid_tgid >> 32;
	event->uid = (__u32)bpf_get_current_uid_gid();
	event->mntns_id = gadget_get_mntns_id();
	event->ret = ctx->ret;
	event->fd = args->fd;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	gadget_submit_buf(ctx, &print_events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &pid_tgid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
