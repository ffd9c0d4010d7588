//! One segment file of the [`LogStore`](super::LogStore): appended to at its
//! length, read back at offsets.
//!
//! On Linux the segment's space is reserved up front (`fallocate`) and the
//! file is mapped shared, so an append is a copy into the page cache, the
//! same pages a `write(2)` would fill, with no system call: a crash of the
//! process loses nothing copied, and the commit thread's `fdatasync` writes
//! the pages out as it would written ones. Reserving first is what makes
//! the mapping safe to write: the blocks exist, so a full disk is an error
//! when the segment is created, never a `SIGBUS` in the middle of a copy.
//! Where reserving or mapping fails (or off Linux), appends are positioned
//! writes.
//!
//! A reserved segment is longer than its lines until it is closed and cut to
//! its length; readers ignore the NUL bytes of that tail ([`super::parse`]).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) struct Segment {
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes appended.
    pub len: u64,
    /// Bytes reserved (0: none, appends are writes).
    reserved: u64,
    #[cfg(target_os = "linux")]
    map: Option<map::Mapping>,
}

impl Segment {
    /// A new segment in `file`, `reserve` bytes mapped up front when the
    /// platform and file system allow (0: appends are writes).
    pub fn new(path: PathBuf, file: File, reserve: u64) -> Segment {
        #[cfg(target_os = "linux")]
        {
            let map = (reserve > 0)
                .then(|| usize::try_from(reserve).ok().and_then(|len| map::Mapping::reserve(&file, len).ok()))
                .flatten();
            let reserved = if map.is_some() { reserve } else { 0 };
            Segment { path, file: Arc::new(file), len: 0, reserved, map }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = reserve;
            Segment { path, file: Arc::new(file), len: 0, reserved: 0 }
        }
    }

    /// True if `n` more bytes go into the reserved space (or nothing is reserved).
    pub fn fits(&self, n: u64) -> bool {
        self.reserved == 0 || self.len + n <= self.reserved
    }

    /// Appends `bytes` at the segment's length. A failed write leaves the
    /// length where it was, so the next append overwrites any partial line.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let offset = self.len;
        #[cfg(target_os = "linux")]
        if let Some(map) = &mut self.map {
            if self.len + bytes.len() as u64 <= self.reserved {
                map.copy_in(offset as usize, bytes);
                self.len += bytes.len() as u64;
                return Ok(offset);
            }
        }
        write_at(&self.file, bytes, offset)?;
        self.len += bytes.len() as u64;
        Ok(offset)
    }

    /// Unmaps and cuts the reserved tail: the segment is written no more.
    pub fn close(&mut self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            self.map = None;
        }
        if self.reserved > self.len {
            self.file.set_len(self.len)?;
        }
        self.reserved = 0;
        Ok(())
    }
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, bytes, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Reads `buf.len()` bytes of `file` at `offset`.
#[cfg(unix)]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Reads `buf.len()` bytes of `file` at `offset`.
#[cfg(windows)]
pub(super) fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod map {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// A shared, writable mapping of a file's first `len` bytes, all of
    /// them allocated on disk.
    pub(super) struct Mapping {
        ptr: *mut u8,
        len: usize,
    }

    // SAFETY: the mapping is plain memory owned by this value; writes go
    // through `&mut self` only.
    unsafe impl Send for Mapping {}
    unsafe impl Sync for Mapping {}

    impl Mapping {
        /// Allocates `len` bytes of `file` and maps them.
        pub fn reserve(file: &File, len: usize) -> io::Result<Mapping> {
            let fd = file.as_raw_fd();
            let size = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: plain system calls on a file descriptor we own; the
            // result is checked.
            let r = unsafe { libc::fallocate(fd, 0, 0, size) };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a new shared mapping of `len` bytes the file now has
            // (allocated above); checked for MAP_FAILED.
            let ptr = unsafe {
                libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            Ok(Mapping { ptr: ptr.cast(), len })
        }

        /// Copies `bytes` to offset `at`.
        pub fn copy_in(&mut self, at: usize, bytes: &[u8]) {
            assert!(at.checked_add(bytes.len()).is_some_and(|end| end <= self.len), "a copy past the mapping");
            // SAFETY: in bounds (checked above); the mapping lives as long
            // as `self` and nothing else writes to it.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(at), bytes.len()) }
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly what `reserve` mapped, once.
            unsafe {
                libc::munmap(self.ptr.cast(), self.len);
            }
        }
    }
}
