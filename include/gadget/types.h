/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Semantic types for gadget events, with the names and the byte layouts of
 * Inspektor Gadget's <gadget/types.h>, so that its gadgets compile here
 * unchanged and objects built against either header decode the same way.
 *
 * The agent recognises these typedef and struct names in the gadget's BTF
 * and formats (and enriches) the fields that use them; the underlying C
 * types are plain integers and arrays, so they cost nothing in the kernel.
 * A member named `X_raw` keeps the raw value and gets a formatted `X`.
 */
#ifndef __GADGET_TYPES_H
#define __GADGET_TYPES_H

/* `bool` comes from vmlinux.h when it was included first. */
#if !defined(__VMLINUX_H__)
#include <stdbool.h>
#endif

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif
/* Same values as the kernel's, so a gadget's own definitions do not clash. */
#ifndef NAME_MAX
#define NAME_MAX 255
#endif
#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* An IPv4 or IPv6 address; which one is said by the endpoint's version. */
union gadget_ip_addr_t {
	__u8 v6[16];
	unsigned __int128 v6_raw;
	__u32 v4;
};

/* An IP address: printed as "10.0.0.1" or "::1". 32 bytes. */
struct gadget_l3endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u8 version; /* 4 or 6 */
};

/* An address, port and protocol: printed as "10.0.0.1:80" or "[::1]:80". 32 bytes. */
struct gadget_l4endpoint_t {
	union gadget_ip_addr_t addr_raw;
	__u16 port;      /* host byte order */
	__u16 proto_raw; /* IPPROTO_TCP, IPPROTO_UDP, ... */
	__u8 version;    /* 4 or 6 */
};

/* Mount namespace inode: enriched with the container it belongs to. */
typedef __u64 gadget_mntns_id;
/* Network namespace inode: enriched with the container it belongs to. */
typedef __u32 gadget_netns_id;
/* bpf_ktime_get_boot_ns(): printed as wall-clock time (RFC 3339). */
typedef __u64 gadget_timestamp;

/* Printed with their names: signal numbers as SIGKILL, errno values as
 * ENOENT (a negative value prints the same name as its absolute value),
 * syscall numbers per architecture (0 is `read` on x86_64), uid and gid
 * through the host's user database. */
typedef __u32 gadget_signal;
typedef __s32 gadget_errno;
typedef __u32 gadget_uid;
typedef __u32 gadget_gid;
typedef __u64 gadget_syscall;
/* open(2) flags: printed as O_RDONLY|O_CREAT. */
typedef __u32 gadget_file_flags;
/* st_mode bits: printed as -rw-r--r--. */
typedef __u32 gadget_file_mode;

/* A stack id from gadget_get_kernel_stack() (gadget/kernel_stack_map.h or
 * gadget/stacks.h), printed with its kernel symbols; negative: no stack. */
typedef __s32 gadget_kernel_stack;

/*
 * A user stack (gadget/user_stack_map.h): the stack id and what identifies
 * the executable and the process. Leave it zeroed to record no stack.
 * 64 bytes, the layout of Inspektor Gadget's struct.
 */
struct gadget_user_stack {
	/* The executable: device, inode and modification time of its file. */
	__u32 major;
	__u32 minor;
	__u64 inode;
	__u64 mtime_sec;
	__u32 mtime_nsec;
	/* Hash of the address-space layout, changing at every execve. */
	__u32 base_addr_hash;
	/* bpf_get_stackid(ctx, &ig_ustack, BPF_F_USER_STACK). */
	__u32 stack_id;
	/* Process and thread ids in the initial pid namespace (level 0) and
	 * the one below it (level 1), with the namespaces' inodes. */
	__u32 tgid_level0;
	__u32 pid_level0;
	__u32 pidns_level0;
	__u32 pid_level1;
	__u32 pidns_level1;
	/* OpenTelemetry correlation id (0: none). */
	__u64 otel_correlation_id;
	/* bpf_ktime_get_boot_ns() when the stack was taken. */
	__u64 boot_timestamp;
};

typedef __u32 gadget_pid;
typedef __u32 gadget_ppid;
typedef __u32 gadget_tid;
typedef __u32 gadget_ptid;
/* Task names: declare `gadget_comm comm[TASK_COMM_LEN]`. */
typedef char gadget_comm;
typedef char gadget_pcomm;
/* A byte count: printed as 1.5 MB. */
typedef __u64 gadget_bytes;
/* Nanoseconds: printed as 1.5ms. */
typedef __u64 gadget_duration;

/* Metric types (counters only grow, gauges go up and down; a
 * gadget_histogram_slot__* array prints as a log2 histogram). */
typedef __u32 gadget_counter__u32;
typedef __u64 gadget_counter__u64;
typedef __u32 gadget_gauge__u32;
typedef __u64 gadget_gauge__u64;
typedef __u32 gadget_histogram_slot__u32;
typedef __u64 gadget_histogram_slot__u64;

/* Network interface index, printed as the interface name (gadgetd). */
typedef __u32 gadget_ifindex;
/* A '\0'-separated argument list (e.g. argv), printed as a list (gadgetd). */
typedef char gadget_arglist;
/* A DNS name in wire format (length-prefixed labels), printed dotted (gadgetd). */
typedef char gadget_dnsname;

/* Credentials of a process. 8 bytes. */
struct gadget_creds {
	gadget_uid uid;
	gadget_gid gid;
};

/* The parent of a process. 24 bytes. */
struct gadget_parent {
	gadget_pcomm comm[TASK_COMM_LEN];
	gadget_ppid pid;
	gadget_ptid tid;
};

/* The process an event is about: gadget_process_populate() (gadget/common.h)
 * fills it for the current task. 64 bytes. */
struct gadget_process {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
	gadget_mntns_id mntns_id;

	struct gadget_creds creds;
	struct gadget_parent parent;
};

#define GADGET_SE_PATH_MAX 4096

/*
 * A socket's owner, as a socket enricher records it in the gadget_sockets map
 * (gadget/sockets-map.h). Accessed with CO-RE, so fields may move; the fields
 * after optional_fields_start may be absent (check bpf_core_field_exists()).
 */
struct gadget_socket_value {
	__u64 mntns;
	__u64 pid_tgid;
	__u64 uid_gid;
	char task[TASK_COMM_LEN];
	char ptask[TASK_COMM_LEN];
	__u64 sock;
	__u64 deletion_timestamp;
	__u32 ppid;
	__u32 ptid;
	char ipv6only;

	char optional_fields_start[0] __attribute__((aligned(8)));

	char cwd[GADGET_SE_PATH_MAX];
	char exepath[GADGET_SE_PATH_MAX];
} __attribute__((preserve_access_index));

#endif /* __GADGET_TYPES_H */
