/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * gadgetd: <bpf/bpf_tracing.h> as gadgets expect it, whatever libbpf the build
 * machine has.
 *
 * Gadgets written for a current libbpf (Inspektor Gadget's builder ships 1.4+)
 * use names that Debian 12's libbpf-dev 1.1 lacks: BPF_UPROBE/BPF_URETPROBE
 * (libbpf 1.2), a sixth probe argument PT_REGS_PARM6* and BPF_KPROBE with six
 * or more arguments (libbpf 1.3). This header is found first on the include
 * path (`-I include`), pulls in the system header with #include_next and then
 * defines only what that header did not: with a new libbpf it adds nothing.
 *
 * Registers follow the kernel's calling conventions (x86-64 System V: the
 * sixth argument is in r9 for functions and syscalls alike; arm64 AAPCS64:
 * x0..x7).
 */
#ifndef __GADGETD_BPF_TRACING_COMPAT_H
#define __GADGETD_BPF_TRACING_COMPAT_H

#include_next <bpf/bpf_tracing.h>

#if defined(bpf_target_x86)
#ifndef __PT_PARM6_REG
#define __PT_PARM6_REG r9
#endif
#elif defined(bpf_target_arm64)
#ifndef __PT_PARM6_REG
#define __PT_PARM6_REG regs[5]
#endif
#ifndef __PT_PARM7_REG
#define __PT_PARM7_REG regs[6]
#endif
#ifndef __PT_PARM8_REG
#define __PT_PARM8_REG regs[7]
#endif
#endif

#if defined(bpf_target_defined) && defined(__PT_PARM6_REG)
#ifndef PT_REGS_PARM6
#define PT_REGS_PARM6(x) (__PT_REGS_CAST(x)->__PT_PARM6_REG)
#endif
#ifndef PT_REGS_PARM6_CORE
#define PT_REGS_PARM6_CORE(x) BPF_CORE_READ(__PT_REGS_CAST(x), __PT_PARM6_REG)
#endif
#ifndef PT_REGS_PARM6_SYSCALL
#define PT_REGS_PARM6_SYSCALL(x) PT_REGS_PARM6(x)
#endif
#ifndef PT_REGS_PARM6_CORE_SYSCALL
#define PT_REGS_PARM6_CORE_SYSCALL(x) PT_REGS_PARM6_CORE(x)
#endif
#endif

#if defined(bpf_target_defined) && defined(__PT_PARM7_REG)
#ifndef PT_REGS_PARM7
#define PT_REGS_PARM7(x) (__PT_REGS_CAST(x)->__PT_PARM7_REG)
#endif
#ifndef PT_REGS_PARM8
#define PT_REGS_PARM8(x) (__PT_REGS_CAST(x)->__PT_PARM8_REG)
#endif
#ifndef PT_REGS_PARM7_CORE
#define PT_REGS_PARM7_CORE(x) BPF_CORE_READ(__PT_REGS_CAST(x), __PT_PARM7_REG)
#endif
#ifndef PT_REGS_PARM8_CORE
#define PT_REGS_PARM8_CORE(x) BPF_CORE_READ(__PT_REGS_CAST(x), __PT_PARM8_REG)
#endif
#endif

/* BPF_KPROBE and BPF_KSYSCALL with more than five arguments. */
#ifndef ___bpf_kprobe_args6
#define ___bpf_kprobe_args6(x, args...) ___bpf_kprobe_args5(args), (void *)PT_REGS_PARM6(ctx)
#endif
#ifndef ___bpf_kprobe_args7
#define ___bpf_kprobe_args7(x, args...) ___bpf_kprobe_args6(args), (void *)PT_REGS_PARM7(ctx)
#endif
#ifndef ___bpf_kprobe_args8
#define ___bpf_kprobe_args8(x, args...) ___bpf_kprobe_args7(args), (void *)PT_REGS_PARM8(ctx)
#endif
#ifndef ___bpf_syscall_args6
#define ___bpf_syscall_args6(x, args...) ___bpf_syscall_args5(args), (void *)PT_REGS_PARM6_SYSCALL(regs)
#endif
#ifndef ___bpf_syswrap_args6
#define ___bpf_syswrap_args6(x, args...) ___bpf_syswrap_args5(args), (void *)PT_REGS_PARM6_CORE_SYSCALL(regs)
#endif

/* Uprobes take their arguments from pt_regs exactly as kprobes do. */
#ifndef BPF_UPROBE
#define BPF_UPROBE(name, args...) BPF_KPROBE(name, ##args)
#endif
#ifndef BPF_URETPROBE
#define BPF_URETPROBE(name, args...) BPF_KRETPROBE(name, ##args)
#endif

#endif /* __GADGETD_BPF_TRACING_COMPAT_H */
