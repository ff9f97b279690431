//! A zero-initialised array in memory the kernel is asked to back with huge pages.
//!
//! The token table is far larger than the caches, and every lookup lands on a random slot: with
//! 4 KiB pages each lookup also misses the TLB, and the page walk misses the cache in turn. With
//! 2 MiB pages the walks mostly hit. The memory comes straight from the allocator with 2 MiB
//! alignment and zeroed (fresh anonymous pages, not yet touched), `madvise(MADV_HUGEPAGE)` is
//! applied before anything writes to it, and the pages fault in as huge ones where the kernel
//! allows (transparent huge pages in `madvise` or `always` mode); elsewhere it is ordinary memory.
//!
//! Must never: hand out memory for a type whose all-zero bit pattern is not a valid value (the
//! constructor is `unsafe` for that reason), or free with a layout other than the one allocated.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ops::Deref;
use std::ptr::NonNull;

const HUGE_PAGE: usize = 2 << 20;

pub struct HugeArray<T> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
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
        // Small arrays gain nothing from huge pages; keep their alignment ordinary.
        let align = if size >= HUGE_PAGE { HUGE_PAGE } else { std::mem::align_of::<T>() };
        let layout = Layout::from_size_align(size, align.max(std::mem::align_of::<T>())).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else { handle_alloc_error(layout) };
        if size >= HUGE_PAGE {
            // SAFETY: the range is the allocation just made; advice never changes its contents
            // (the memory is zero either way) and a failure only means ordinary pages.
            unsafe { libc::madvise(raw.cast(), size, libc::MADV_HUGEPAGE) };
        }
        HugeArray { ptr, len, layout }
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
            dealloc(self.ptr.as_ptr().cast(), self.layout);
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
        assert!(small.iter().all(|a| a.load(Ordering::Relaxed) == 0));
        let n = (8 << 20) / 8;
        // SAFETY: as above.
        let large: HugeArray<AtomicU64> = unsafe { HugeArray::zeroed(n) };
        assert_eq!(large.as_ptr() as usize % HUGE_PAGE, 0, "2 MiB aligned");
        large[n - 1].store(7, Ordering::Relaxed);
        assert_eq!(large[n - 1].load(Ordering::Relaxed), 7);
        assert_eq!(large[0].load(Ordering::Relaxed), 0);
    }
}
