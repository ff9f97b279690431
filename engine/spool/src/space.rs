//! Free space on the spool's filesystem, for refusing mail before it cannot be stored.
//!
//! One `statvfs(2)` a call (a few microseconds, no I/O: the kernel keeps the counters), made on
//! the caller's thread. It never blocks on the disk and never writes.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (the blocks
/// reserved for root are not counted: the gateway should not live on them).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated string that outlives the call, and `st` points to memory
    // large enough for one `statvfs`, which the kernel fills completely when the call returns 0;
    // it is read only in that case.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct was written.
    let st = unsafe { st.assume_init() };
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_of_a_real_directory_and_an_error_for_a_missing_one() {
        let free = free_bytes(&std::env::temp_dir()).unwrap();
        assert!(free > 0);
        assert!(free_bytes(Path::new("/no/such/dir/for/mxguard")).is_err());
    }
}
