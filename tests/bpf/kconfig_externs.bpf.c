// SPDX-License-Identifier: GPL-2.0
/*
 * `.kconfig` externs as libbpf gives them (tests/tests/loader.rs): every
 * getpriority(2) of targ_pid with `who` == KCONFIG_WHO sends one event with
 * the value of each extern, one per C type libbpf accepts. The test reads
 * /proc/config.gz and uname itself and compares every field.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include <gadget/buffer.h>
#include <gadget/macros.h>
#include <gadget/types.h>

#define KCONFIG_WHO 0x4b434647

extern int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern char CONFIG_BPF __kconfig;
extern u32 CONFIG_HZ __kconfig;
extern u64 CONFIG_NR_CPUS __kconfig __weak;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
/* Not set on any kernel: weak, so 0. */
extern bool CONFIG_GADGETD_NO_SUCH_OPTION __kconfig __weak;
extern int CONFIG_GADGETD_NO_SUCH_NUMBER __kconfig __weak;

struct kconfig_event {
	gadget_pid pid;
	__u32 kernel_version;
	__u8 has_bpf_cookie;
	__u8 bpf_syscall;
	__u8 bpf_letter;
	__u8 missing_bool;
	__u32 bpf_jit;
	__u32 hz;
	__s32 missing_number;
	__u64 nr_cpus;
	char localversion[16];
};

const volatile __u32 targ_pid = 0;
GADGET_PARAM(targ_pid);

GADGET_TRACER_MAP(events, 1024 * 256);
GADGET_TRACER(kconfig, events, kconfig_event);

SEC("tracepoint/syscalls/sys_enter_getpriority")
int kconfig_getpriority(struct trace_event_raw_sys_enter *ctx)
{
	struct kconfig_event *e;

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid || (__u32)ctx->args[1] != KCONFIG_WHO)
		return 0;
	e = gadget_reserve_buf(&events, sizeof(*e));
	if (!e)
		return 0;
	e->pid = targ_pid;
	e->kernel_version = LINUX_KERNEL_VERSION;
	e->has_bpf_cookie = LINUX_HAS_BPF_COOKIE;
	e->bpf_syscall = CONFIG_BPF_SYSCALL;
	e->bpf_letter = CONFIG_BPF;
	e->missing_bool = CONFIG_GADGETD_NO_SUCH_OPTION;
	e->bpf_jit = CONFIG_BPF_JIT;
	e->hz = CONFIG_HZ;
	e->missing_number = CONFIG_GADGETD_NO_SUCH_NUMBER;
	e->nr_cpus = CONFIG_NR_CPUS;
	__builtin_memcpy(e->localversion, CONFIG_LOCALVERSION, sizeof(e->localversion));
	gadget_submit_buf(ctx, &events, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
