// Counts every heap allocation of the process while `g_counting` is set, by
// interposing glibc's allocator entry points (operator new and Eigen's aligned
// allocator both end up here). Include in exactly one source file of a test
// executable: the definitions replace malloc for the whole process.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace nystream::testing {

inline std::atomic<bool> g_counting{false};   // set around the code under test
inline std::atomic<long> g_allocations{0};    // allocations while counting

inline void note_allocation() {
  if (g_counting.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace nystream::testing

extern "C" {
void* malloc(size_t size) { nystream::testing::note_allocation(); return __libc_malloc(size); }
void* calloc(size_t n, size_t size) { nystream::testing::note_allocation(); return __libc_calloc(n, size); }
void* realloc(void* p, size_t size) { nystream::testing::note_allocation(); return __libc_realloc(p, size); }
void* memalign(size_t alignment, size_t size) {
  nystream::testing::note_allocation();
  return __libc_memalign(alignment, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  nystream::testing::note_allocation();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) {
  nystream::testing::note_allocation();
  *out = __libc_memalign(alignment, size);
  return *out ? 0 : ENOMEM;
}
}
