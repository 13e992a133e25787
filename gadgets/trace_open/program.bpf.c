// SPDX-License-Identifier: GPL-2.0
/*
 * trace_open: every openat(2) with its result, from the syscall tracepoints
 * (no kprobes needed). One data source, `open`.
 *
 * The layout shows the conventions of include/gadget/:
 *   - struct gadget_process: who opened (comm, pid, tid, uid, gid, parent,
 *     mount namespace, which the agent turns into a container);
 *   - X_raw members of semantic types: the number stays in JSON (`error_raw`,
 *     `flags_raw`, `mode_raw`) and the agent adds the name (`error` = ENOENT,
 *     `flags` = O_RDONLY|O_CLOEXEC, `mode` = -rw-r--r--);
 *   - gadget/filter.h: --pid, --tid, --uid, --gid and --comm for free.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/macros.h>
#include <gadget/types.h>

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;

	gadget_errno error_raw; /* 0, or the errno of a failed open */
	__u32 fd;		/* the new file descriptor; 0 when the open failed */
	gadget_file_flags flags_raw;
	gadget_file_mode mode_raw;
	char fname[NAME_MAX];
};

/* What sys_enter saw, until sys_exit has the result. */
struct args_t {
	const char *fname;
	int flags;
	__u16 mode;
};

/* Only failed opens (--failed, see gadget.yaml). */
const volatile bool targ_failed = false;
GADGET_PARAM(targ_failed);

/* Pending opens by thread id (the kernel's pid). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

GADGET_TRACER_MAP(events, 1024 * 1024);
GADGET_TRACER(open, events, event);

SEC("tracepoint/syscalls/sys_enter_openat")
int ig_openat_e(struct syscall_trace_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t args = {};

	if (gadget_should_discard_data_current())
		return 0;

	args.fname = (const char *)ctx->args[1];
	args.flags = (int)ctx->args[2];
	args.mode = (__u16)ctx->args[3];
	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int ig_openat_x(struct syscall_trace_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t *args;
	struct event *event;
	long ret;

	args = bpf_map_lookup_elem(&start, &tid);
	if (!args)
		return 0; /* the enter was filtered out, or missed */
	ret = ctx->ret;
	if (targ_failed && ret >= 0)
		goto cleanup;

	event = gadget_reserve_buf(&events, sizeof(*event));
	if (!event)
		goto cleanup;

	event->timestamp_raw = bpf_ktime_get_boot_ns();
	gadget_process_populate(&event->proc);
	event->fd = ret >= 0 ? ret : 0;
	event->error_raw = ret >= 0 ? 0 : -ret;
	event->flags_raw = args->flags;
	event->mode_raw = args->mode;
	bpf_probe_read_user_str(&event->fname, sizeof(event->fname), args->fname);

	gadget_submit_buf(ctx, &events, event, sizeof(*event));
cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
