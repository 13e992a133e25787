/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Semantic types for gadget events. The agent recognises these typedef and
 * struct names in the gadget's BTF and formats (and enriches) the fields that
 * use them; the underlying C types are plain integers, so using them costs
 * nothing in the kernel.
 */
#ifndef __GADGET_TYPES_H
#define __GADGET_TYPES_H

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif
#ifndef NAME_MAX
#define NAME_MAX 255
#endif
#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Mount namespace inode: enriched with the container it belongs to. */
typedef __u64 gadget_mntns_id;
/* Network namespace inode: enriched with the container it belongs to. */
typedef __u64 gadget_netns_id;
/* bpf_ktime_get_boot_ns(): printed as wall-clock time (RFC 3339). */
typedef __u64 gadget_timestamp;

/* Printed as names: uid/gid through the host's user database, errno and
 * signal numbers as ENOENT / SIGKILL, syscall numbers per architecture. */
typedef __u32 gadget_uid;
typedef __u32 gadget_gid;
typedef __s32 gadget_errno;
typedef __u32 gadget_signal;
typedef __u32 gadget_syscall;
typedef __u32 gadget_pid;
/* A task's comm, printed as a string. */
typedef char gadget_comm[TASK_COMM_LEN];
/* Network interface index, printed as the interface name. */
typedef __u32 gadget_ifindex;
/* A '\0'-separated argument list (e.g. argv), printed as a list of strings. */
typedef char gadget_arglist;
/* A kernel stack id from gadget_get_kernel_stack() (gadget/stacks.h),
 * printed with a list of kernel symbols. */
typedef __s32 gadget_kernel_stack;
/* A DNS name in wire format (length-prefixed labels), printed dotted. */
typedef char gadget_dnsname;

union gadget_ip_addr_t {
	__u8 v6[16];
	__u32 v4;
};

/* An IPv4/IPv6 address (version 4 or 6): printed as "ip". */
struct gadget_l3endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u8 version;
	__u8 pad[3];
};

/* An address and port: printed as "ip:port" (or "[ip6]:port"). */
struct gadget_l4endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u16 port;     /* host byte order */
	__u16 proto;    /* IPPROTO_TCP, IPPROTO_UDP, ... */
	__u8 version;
	__u8 pad[3];
};

#endif /* __GADGET_TYPES_H */
