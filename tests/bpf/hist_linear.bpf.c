// SPDX-License-Identifier: GPL-2.0
/* A linear histogram: each getpid(2) of targ_pid adds targ_value (step 10). */
#include <vmlinux/vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <gadget/macros.h>
#include <gadget/histogram.h>

GADGET_PARAM(__u32, targ_pid, 0);
GADGET_PARAM(__u32, targ_value, 0);

GADGET_HIST_LINEAR(things, "things", 10);

SEC("tracepoint/syscalls/sys_enter_getpid")
int hist_linear_getpid(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	gadget_hist_add_linear(&hist_things, targ_value, 10);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
