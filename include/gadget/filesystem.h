/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Paths of files, from kernel structs (tracing programs):
 *
 *   char *p = get_path_str(&file->f_path);          // "/etc/passwd", or NULL
 *   bpf_probe_read_kernel_str(event->path, sizeof(event->path), p);
 *   read_full_path_of_open_file_fd(fd, buf, size);  // the path of an open fd
 *
 * The path is built in a per-CPU buffer (the map `bufs`), walking dentries
 * up to the root and crossing mount points; it stays valid until the next
 * call on the same CPU. A path deeper than GADGET_MAX_PATH_COMPONENTS
 * components keeps its last components. Files outside any mount tree
 * (memfd, pipes) give their own name.
 */
#ifndef __GADGET_FILESYSTEM_H
#define __GADGET_FILESYSTEM_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* The size of path fields in events (smaller than PATH_MAX to save ring space). */
#define GADGET_PATH_MAX 512
#ifndef PATH_MAX
#define PATH_MAX 4096
#endif
#define GADGET_MAX_PATH_COMPONENTS 80
/* The per-CPU buffer: the path is assembled backwards in its second half. */
#define GADGET_PATH_BUF_SIZE (1 << 15)
#define GADGET_PATH_HALF (GADGET_PATH_BUF_SIZE >> 1)

struct gadget_path_buf {
	u8 buf[GADGET_PATH_BUF_SIZE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct gadget_path_buf);
} bufs SEC(".maps");

/* The full path of `path` (a struct path in kernel memory); NULL when no buffer. */
static __always_inline void *get_path_str(const struct path *path)
{
	u32 zero = 0;
	struct gadget_path_buf *out = bpf_map_lookup_elem(&bufs, &zero);
	struct dentry *dentry = BPF_CORE_READ(path, dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
	struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
	u32 end = GADGET_PATH_HALF, off = end, next;
	char slash = '/';

	if (!out)
		return NULL;

	for (int i = 0; i < GADGET_MAX_PATH_COMPONENTS; i++) {
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		struct qstr name;
		u32 len;
		long n;

		if (dentry == mnt_root || dentry == parent) {
			if (dentry != mnt_root || mnt == mnt_parent)
				break; /* the global root (or a detached tree) */
			/* The root of a mount: continue from where it is mounted. */
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			vfsmnt = &mnt->mnt;
			continue;
		}
		name = BPF_CORE_READ(dentry, d_name);
		len = (name.len + 1) & (PATH_MAX - 1);
		if (len > off)
			break;
		/*
		 * Masked so that every iteration's `off` has the same range for
		 * the verifier (which can then prune); the value is unchanged,
		 * as off - len < GADGET_PATH_HALF.
		 */
		next = (off - len) & (GADGET_PATH_HALF - 1);
		n = bpf_probe_read_kernel_str(&out->buf[next], len, (void *)name.name);
		if (n <= 1)
			break;
		off = next;
		/* The component's NUL becomes the separator before the next one. */
		out->buf[(off + n - 1) & (GADGET_PATH_BUF_SIZE - 1)] = slash;
		dentry = parent;
	}

	if (off == end) {
		/* No component: the root itself, or a file outside any mount tree. */
		struct qstr name = BPF_CORE_READ(dentry, d_name);

		bpf_probe_read_kernel_str(&out->buf[0], PATH_MAX, (void *)name.name);
		return &out->buf[0];
	}
	/* Leading slash; the trailing separator becomes the terminator. */
	off -= 1;
	out->buf[off & (GADGET_PATH_BUF_SIZE - 1)] = slash;
	out->buf[(end - 1) & (GADGET_PATH_BUF_SIZE - 1)] = 0;
	return &out->buf[off & (GADGET_PATH_BUF_SIZE - 1)];
}

/* The struct file behind descriptor `fd_num` of the current task, or NULL. */
static __always_inline struct file *get_struct_file_for_fd(int fd_num)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *f = NULL;
	unsigned int max_fds;

	if (fd_num < 0 || !task)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	if ((unsigned int)fd_num < max_fds)
		bpf_core_read(&f, sizeof(f), &fds[fd_num]);
	return f;
}

/* Copies the full path of open descriptor `fd_num` into `buf`: its length with the NUL, or < 0. */
static __always_inline long read_full_path_of_open_file_fd(int fd_num, char *buf, u64 buf_len)
{
	struct file *file = get_struct_file_for_fd(fd_num);
	struct path f_path;
	char *path;

	if (!file)
		return -1;
	f_path = BPF_CORE_READ(file, f_path);
	path = get_path_str(&f_path);
	if (!path)
		return -1;
	return bpf_probe_read_kernel_str(buf, buf_len, path);
}

#endif /* __GADGET_FILESYSTEM_H */
