// Counts every heap allocation of the process while `g_counting` is set, by
// interposing glibc's allocator entry points (operator new and Eigen's aligned
// allocator both end up here). Include in exactly one source file of a test
// executable: the definitions replace malloc for the whole process (under
// AddressSanitizer, an allocation hook of its own is installed instead).
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

// AddressSanitizer owns malloc: definitions here would replace its interceptors, and
// its free() would then be handed glibc's blocks. Under it, count through its
// allocation hook instead, which sees the same calls (new, malloc, aligned).
#if defined(__SANITIZE_ADDRESS__)
#define NYSTREAM_COUNT_WITH_SANITIZER_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NYSTREAM_COUNT_WITH_SANITIZER_HOOK 1
#endif
#endif

#ifdef NYSTREAM_COUNT_WITH_SANITIZER_HOOK
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*)(const volatile void*, size_t),
                                                         void (*)(const volatile void*));
namespace nystream::testing {
inline void on_sanitizer_malloc(const volatile void*, size_t) { note_allocation(); }
inline void on_sanitizer_free(const volatile void*) {}  // both hooks, or none is installed
inline const int g_hook_installed =
    __sanitizer_install_malloc_and_free_hooks(on_sanitizer_malloc, on_sanitizer_free);
}  // namespace nystream::testing
#else
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
#endif
