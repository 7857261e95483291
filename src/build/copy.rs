//! Dockerfile `COPY` and `ADD` (to be written): for now the two pure helpers they need, Go's
//! `filepath.Match` for source globs and the content sniffing that tells `ADD` an archive.

#[allow(dead_code)]
mod archive;
#[allow(dead_code)]
mod pattern;
