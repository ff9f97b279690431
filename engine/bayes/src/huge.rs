//! A zero-initialised array in memory the kernel is asked to back with huge pages.
//!
//! The token table is far larger than the caches, and every lookup lands on a random slot: with
//! 4 KiB pages each lookup also misses the TLB, and the page walk misses the cache in turn. With
//! 2 MiB pages the walks mostly hit. Large arrays are mapped straight from the kernel (fresh
//! anonymous pages, zero and not yet touched — the allocator could hand back pages it had already
//! faulted in as small ones), `madvise(MADV_HUGEPAGE)` is applied before anything writes to them,
//! and they fault in as huge pages where the kernel allows (transparent huge pages in `madvise`
//! or `always` mode); elsewhere they are ordinary memory. Small arrays come from the allocator.
//!
//! Must never: hand out memory for a type whose all-zero bit pattern is not a valid value (the
//! constructor is `unsafe` for that reason), or free memory other than the way it was obtained.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

const HUGE_PAGE: usize = 2 << 20;

pub struct HugeArray<T> {
    ptr: NonNull<T>,
    len: usize,
    backing: Backing,
}

/// Where the memory came from, and so how it goes back.
#[derive(Debug, PartialEq)]
enum Backing {
    Allocator(Layout),
    /// An anonymous mapping of this many bytes.
    Mapped(usize),
}

// SAFETY: a HugeArray owns its elements like a Box<[T]> does.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T> HugeArray<T> {
    /// `len` elements, all bits zero.
    ///
    /// # Safety
    /// The all-zero bit pattern must be a valid `T` (atomics and integers are).
    pub unsafe fn zeroed(len: usize) -> HugeArray<T> {
        let size = std::mem::size_of::<T>().checked_mul(len.max(1)).expect("array size overflows");
        if size >= HUGE_PAGE && std::mem::align_of::<T>() <= 4096 {
            let mapped = size.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            // SAFETY: an anonymous private mapping of fresh zero pages; no file, no fixed address.
            let raw = unsafe {
                libc::mmap(std::ptr::null_mut(), mapped, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
            };
            if raw != libc::MAP_FAILED {
                // SAFETY: the range is the mapping just made; advice never changes its contents
                // and a failure only means ordinary pages.
                unsafe { libc::madvise(raw, mapped, libc::MADV_HUGEPAGE) };
                // Fault every page in now (Linux 5.14+; older kernels fault on first touch),
                // so the owner pays for zeroing and any compaction at creation — at start or on
                // the learner thread's rebuild — and not on the first lessons learnt.
                // SAFETY: as above; populating writes nothing but the zeros already there.
                unsafe { libc::madvise(raw, mapped, libc::MADV_POPULATE_WRITE) };
                if let Some(ptr) = NonNull::new(raw.cast::<T>()) {
                    return HugeArray { ptr, len, backing: Backing::Mapped(mapped) };
                }
            }
        }
        let layout = Layout::from_size_align(size, std::mem::align_of::<T>()).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else { handle_alloc_error(layout) };
        HugeArray { ptr, len, backing: Backing::Allocator(layout) }
    }
}

impl<T> Deref for HugeArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised (zeroed, valid per `zeroed`'s contract)
        // elements owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        // SAFETY: elements are dropped in place, then the memory is freed with the layout it
        // was allocated with.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len));
            match self.backing {
                Backing::Allocator(layout) => dealloc(self.ptr.as_ptr().cast(), layout),
                Backing::Mapped(bytes) => {
                    libc::munmap(self.ptr.as_ptr().cast(), bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn zeroed_small_and_large() {
        // SAFETY: zero is a valid AtomicU64.
        let small: HugeArray<AtomicU64> = unsafe { HugeArray::zeroed(10) };
        assert_eq!(small.len(), 10);
        assert!(matches!(small.backing, Backing::Allocator(_)), "small arrays from the allocator");
        assert!(small.iter().all(|a| a.load(Ordering::Relaxed) == 0));
        let n = (8 << 20) / 8;
        // SAFETY: as above.
        let large: HugeArray<AtomicU64> = unsafe { HugeArray::zeroed(n) };
        assert!(matches!(large.backing, Backing::Mapped(_)), "mapped from the kernel");
        large[n - 1].store(7, Ordering::Relaxed);
        assert_eq!(large[n - 1].load(Ordering::Relaxed), 7);
        assert_eq!(large[0].load(Ordering::Relaxed), 0);
    }
}
