// SPDX-License-Identifier: GPL-2.0
/* A strong `.kconfig` extern no kernel sets: the load names it (loader.rs). */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

extern int CONFIG_GADGETD_NO_SUCH_OPTION __kconfig;

struct bad_kconfig_event {
	__u32 value;
};

GADGET_TRACER_MAP(events, 4096);
GADGET_TRACER(bad_kconfig, events, bad_kconfig_event);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int bad_kconfig_getpriority(void *ctx)
{
	struct bad_kconfig_event *e = gadget_reserve_buf(&events, sizeof(*e));

	if (!e)
		return 0;
	e->value = CONFIG_GADGETD_NO_SUCH_OPTION;
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
