/* Happens-before annotations for ThreadSanitizer runs of GStreamer code
 * (.ci/run's TSan stage, LD_PRELOADed; idle in programs without GLib or TSan).
 *
 * Debian's GLib and GStreamer are not built with -fsanitize=thread, so TSan
 * sees none of their synchronisation: GMutex and GCond are futexes used
 * directly (GLib >= 2.70 on Linux), and reference counts and GstBus's message
 * queue are atomics in uninstrumented code. Every object handed from one
 * thread to another through them (buffers, events, messages, elements at
 * shutdown) is then reported as a race, in whichever code touches it next:
 * ours included. Rather than suppress those reports, which would also hide our
 * races, this wraps the few exported entry points with the ordering GLib
 * really gives them, using TSan's __tsan_acquire / __tsan_release:
 *
 *   g_mutex_lock / trylock,    acquire on the mutex after locking
 *   g_rec_mutex_lock / trylock
 *   g_mutex_unlock,            release on the mutex before unlocking
 *   g_rec_mutex_unlock
 *   g_cond_wait / wait_until   release the mutex before waiting, acquire after
 *   g_object_unref,            release then acquire on the object: the
 *   gst_mini_object_unref      refcount decrement is a full barrier, so the
 *                              thread that frees has seen every earlier unref
 *   gst_bus_post               release on the bus before queueing
 *   gst_bus_timed_pop_filtered acquire on the bus after a message is popped,
 *                              and on the message by whichever thread frees it
 *                              (a weak reference's notify)
 *
 * Calls from one library to another (libgstreamer's and libgstbase's to
 * GMutex, ours to everything) go through the PLT and reach these wrappers; a
 * library's calls to its own functions do not (both are linked with
 * -Bsymbolic-functions). What stays hidden inside libglib is left to
 * .ci/tsan.supp; inside libgstreamer, the last unref of a bus message can
 * happen in a bin while posting, hence the weak reference below. Built without
 * -fsanitize (it has no memory accesses of its own to check); it does nothing
 * when TSan is absent.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

void __tsan_acquire(void *addr) __attribute__((weak));
void __tsan_release(void *addr) __attribute__((weak));

static void acquire(void *addr) { if (__tsan_acquire && addr) __tsan_acquire(addr); }
static void release(void *addr) { if (__tsan_release && addr) __tsan_release(addr); }

/* The next definition of NAME after this library's (GLib's or GStreamer's). */
static void *next(const char *name) {
  void *f = dlsym(RTLD_NEXT, name);
  if (!f) {
    fprintf(stderr, "tsan_glib: %s not found\n", name);
    abort();
  }
  return f;
}
/* real_NAME: a pointer to the wrapped function, of the wrapper's own type. */
#define REAL(name) \
  static __typeof__(&name) real_##name; \
  if (!real_##name) real_##name = (__typeof__(&name)) next(#name)

void g_mutex_lock(void *mutex) {
  REAL(g_mutex_lock);
  real_g_mutex_lock(mutex);
  acquire(mutex);
}

int g_mutex_trylock(void *mutex) {
  REAL(g_mutex_trylock);
  int locked = real_g_mutex_trylock(mutex);
  if (locked) acquire(mutex);
  return locked;
}

void g_mutex_unlock(void *mutex) {
  REAL(g_mutex_unlock);
  release(mutex);
  real_g_mutex_unlock(mutex);
}

void g_rec_mutex_lock(void *mutex) {
  REAL(g_rec_mutex_lock);
  real_g_rec_mutex_lock(mutex);
  acquire(mutex);
}

int g_rec_mutex_trylock(void *mutex) {
  REAL(g_rec_mutex_trylock);
  int locked = real_g_rec_mutex_trylock(mutex);
  if (locked) acquire(mutex);
  return locked;
}

void g_rec_mutex_unlock(void *mutex) {
  REAL(g_rec_mutex_unlock);
  release(mutex);
  real_g_rec_mutex_unlock(mutex);
}

void g_cond_wait(void *cond, void *mutex) {
  REAL(g_cond_wait);
  release(mutex);
  real_g_cond_wait(cond, mutex);
  acquire(mutex);
}

int g_cond_wait_until(void *cond, void *mutex, int64_t end_time) {
  REAL(g_cond_wait_until);
  release(mutex);
  int signalled = real_g_cond_wait_until(cond, mutex, end_time);
  acquire(mutex);
  return signalled;
}

void g_object_unref(void *object) {
  REAL(g_object_unref);
  release(object);
  acquire(object);
  real_g_object_unref(object);
}

void gst_mini_object_unref(void *object) {
  REAL(gst_mini_object_unref);
  release(object);
  acquire(object);
  real_gst_mini_object_unref(object);
}

int gst_bus_post(void *bus, void *message) {
  REAL(gst_bus_post);
  release(bus);
  return real_gst_bus_post(bus, message);
}

/* A GstMiniObjectNotify: runs in the thread that frees the object, before. */
static void acquire_before_free(void *data, void *object) {
  (void) data;
  acquire(object);
}

void *gst_bus_timed_pop_filtered(void *bus, uint64_t timeout, int types) {
  REAL(gst_bus_timed_pop_filtered);
  static void (*weak_ref)(void *, void (*)(void *, void *), void *);
  if (!weak_ref) weak_ref = (__typeof__(weak_ref)) next("gst_mini_object_weak_ref");
  void *message = real_gst_bus_timed_pop_filtered(bus, timeout, types);
  if (message) {
    acquire(bus);
    /* The application reads the message, then unrefs it (released above);
     * the last reference may be dropped inside libgstreamer (a bin still
     * holding it while posting), which the PLT does not reach. */
    weak_ref(message, acquire_before_free, NULL);
  }
  return message;
}
