// SPDX-License-Identifier: GPL-2.0
/* A log2 histogram (a profiler): each getpid(2) of targ_pid adds targ_value. */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/macros.h>
#include <gadget/histogram.h>

GADGET_PARAM(__u32, targ_pid, 0);
GADGET_PARAM(__u32, targ_value, 0);

GADGET_HIST_LOG2(values, "usecs");

SEC("tracepoint/syscalls/sys_enter_getpid")
int hist_log2_getpid(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	gadget_hist_add_log2(&hist_values, targ_value);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
