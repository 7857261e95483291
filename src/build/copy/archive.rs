//! `ADD`'s local archives: a file whose first bytes are a tar header, plain or behind gzip or zstd
//! magic, is unpacked into the destination directory instead of copied. Told by its content, never by
//! its name, as Docker does: a `.tar.gz` that is not a tar inside is copied as a file. bzip2 and xz
//! archives are copied as files (no decoder for them is among the crate's dependencies).
//!
//! Unpacking is `store::unpack::apply_layer` onto the destination directory (reopened through its
//! descriptor, so no path is looked up again): every entry stays beneath that directory. It treats
//! `.wh.` entries as layer whiteouts (they remove what they name instead of being written): a quirk
//! Docker does not have. Entries keep the owners, modes and times the archive gives them.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::store::unpack::{apply_layer, UnpackError};

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Tar,
    Gzip,
    Zstd,
}

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BLOCK: usize = 512;

/// Reads a file from an offset of its own, leaving the file's position alone.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Up to one tar block from `r`; shorter only at its end.
fn first_block(mut r: impl Read) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(BLOCK);
    r.by_ref().take(BLOCK as u64).read_to_end(&mut block)?;
    Ok(block)
}

/// What kind of archive `file` holds, if any. A stream that fails to decode is no archive.
pub(super) fn detect(file: &File) -> io::Result<Option<Kind>> {
    let head = first_block(At { file, pos: 0 })?;
    let inner = if head.starts_with(GZIP) {
        (Kind::Gzip, first_block(flate2::read::GzDecoder::new(At { file, pos: 0 })))
    } else if head.starts_with(ZSTD) {
        let block = zstd::stream::read::Decoder::new(At { file, pos: 0 }).and_then(first_block);
        (Kind::Zstd, block)
    } else {
        (Kind::Tar, Ok(head))
    };
    Ok(match inner {
        (kind, Ok(block)) if is_tar_header(&block) => Some(kind),
        _ => None,
    })
}

/// Whether `block` is a whole tar header with a right checksum (Go's `tar.Reader.Next` succeeding on
/// it, which is how Docker tells an archive). An empty archive (zero blocks) is not one.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() != BLOCK || block.iter().all(|b| *b == 0) {
        return false;
    }
    let field = &block[148..156];
    let digits: Vec<u8> = field.iter().copied().filter(|b| *b != b' ' && *b != 0).collect();
    let Some(stored) = std::str::from_utf8(&digits).ok().and_then(|d| u64::from_str_radix(d, 8).ok()) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

/// Unpacks `file`, a `kind` archive, into the directory `dir`; answers the bytes of file content written.
pub(super) fn unpack(dir: &OwnedFd, file: File, kind: Kind) -> Result<u64, UnpackError> {
    // The directory as the kernel resolved it already: apply_layer opens this magic link, not a path.
    let root = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let reader = BufReader::new(file);
    match kind {
        Kind::Tar => apply_layer(&root, reader),
        Kind::Gzip => apply_layer(&root, flate2::read::MultiGzDecoder::new(reader)),
        Kind::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(reader).map_err(UnpackError::Tar)?;
            apply_layer(&root, decoder)
        }
    }
}
