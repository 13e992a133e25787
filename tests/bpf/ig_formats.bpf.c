// SPDX-License-Identifier: GPL-2.0
/*
 * Every formatter of Inspektor Gadget's conventions in one event
 * (tests/tests/ig_conventions.rs): X_raw members with a formatted X
 * (timestamp, errno, signal, syscall, file flags, file mode, bytes,
 * duration, enum, bit-set enum, kernel stack), a __hidden member and
 * nested structs. One event per read, openat, kill and clock_nanosleep.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/buffer.h>
#include <gadget/common.h>
#include <gadget/filter.h>
#include <gadget/kernel_stack_map.h>
#include <gadget/macros.h>
#include <gadget/types.h>

enum igt_op {
	IGT_READ = 1,
	IGT_OPEN = 2,
	IGT_KILL = 3,
	IGT_SLEEP = 4,
};

enum igt_access_set {
	IGT_WRITE = 1,
	IGT_CREATE = 2,
	IGT_TRUNCATE = 4,
};

struct event {
	gadget_timestamp timestamp_raw;
	struct gadget_process proc;
	gadget_syscall syscall_raw;
	enum igt_op op_raw;
	enum igt_access_set access_raw;
	gadget_signal sig_raw;
	gadget_errno error_raw;
	gadget_file_flags flags_raw;
	gadget_file_mode mode_raw;
	gadget_bytes bytes_raw;
	gadget_duration duration_raw;
	gadget_kernel_stack kstack_raw;
	__u32 __reserved;
};

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(formats, events, event);

SEC("tracepoint/raw_syscalls/sys_enter")
int ig_test_formats(struct trace_event_raw_sys_enter *ctx)
{
	long id = ctx->id;
	struct event *e;
	enum igt_op op;

	switch (id) {
	case 0: op = IGT_READ; break;           /* read */
	case 257: op = IGT_OPEN; break;         /* openat */
	case 62: op = IGT_KILL; break;          /* kill */
	case 230: op = IGT_SLEEP; break;        /* clock_nanosleep */
	default: return 0;
	}
	if (gadget_should_discard_data_current())
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	gadget_process_populate(&e->proc);
	e->timestamp_raw = bpf_ktime_get_boot_ns();
	e->syscall_raw = id;
	e->op_raw = op;
	e->kstack_raw = gadget_get_kernel_stack(ctx);
	e->__reserved = 7;
	if (op == IGT_READ) {
		e->bytes_raw = ctx->args[2];
	} else if (op == IGT_OPEN) {
		int flags = ctx->args[2];

		e->flags_raw = flags;
		e->mode_raw = ctx->args[3];
		e->access_raw = ((flags & 3) ? IGT_WRITE : 0) | ((flags & 0100) ? IGT_CREATE : 0) |
				((flags & 01000) ? IGT_TRUNCATE : 0);
	} else if (op == IGT_KILL) {
		e->sig_raw = ctx->args[1];
		e->error_raw = 3; /* ESRCH, as a formatted example */
	} else {
		struct __kernel_timespec ts = {};

		bpf_probe_read_user(&ts, sizeof(ts), (void *)ctx->args[2]);
		e->duration_raw = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	}
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
