/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Conveniences for gadget authors. */
#ifndef __GADGET_MACROS_H
#define __GADGET_MACROS_H

/*
 * Declares a gadget parameter: a `const volatile` global that the agent
 * exposes as `--NAME` with the initializer as default.
 */
#define GADGET_PARAM(type, name, value) const volatile type name = value

/* Marks the output type of an iterator program (a snapshotter). */
#define GADGET_ITER_TYPE(type) const type *gadget_iter_type __attribute__((unused))

#endif /* __GADGET_MACROS_H */
