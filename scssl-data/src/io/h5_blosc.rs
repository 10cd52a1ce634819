//! Blosc-compressed datasets in `.h5ad` (HDF5 filter 32001, as `hdf5plugin.Blosc` and
//! `hdf5-blosc` write them). `hdf5-pure` has no Blosc filter, but it lists a dataset's chunks
//! (file offset, stored size, filter mask), so each chunk is read from the file and decoded
//! here with c-blosc 1.21 (the `blosc-src` build zarr's Blosc codec uses too). A chunk's
//! Blosc header is validated against the bytes actually stored before anything is decoded,
//! so a damaged header is an error, never a read past the buffer.

use std::os::unix::fs::FileExt;

use hdf5_pure::{DType, Dataset};

use super::store::Data;
use crate::error::{Error, Result};

/// HDF5 filter id of Blosc (registered by `hdf5plugin`/`hdf5-blosc`).
pub(super) const FILTER_BLOSC: u16 = 32001;

fn format_err(file: &str, key: &str, reason: String) -> Error {
    Error::Format {
        file: file.into(),
        key: key.into(),
        reason,
    }
}

/// Decodes one Blosc frame into exactly `expected` bytes.
fn decode_frame(frame: &[u8], expected: usize, file: &str, key: &str) -> Result<Vec<u8>> {
    let bad = |why: &str| format_err(file, key, format!("a Blosc chunk is damaged: {why}"));
    // the fixed Blosc 1 header is 16 bytes; validate reads no further than `frame.len()`
    if frame.len() < 16 {
        return Err(bad("shorter than its header"));
    }
    let mut nbytes = 0usize;
    // SAFETY: `frame` is valid for `frame.len()` bytes, and c-blosc's validator reads at most
    // that many (it checks the header's compressed size against the length given).
    let rc = unsafe {
        blosc_src::blosc_cbuffer_validate(frame.as_ptr().cast(), frame.len(), &mut nbytes)
    };
    if rc < 0 {
        return Err(bad("its header does not fit the stored bytes"));
    }
    if nbytes != expected {
        return Err(bad(&format!(
            "it decodes to {nbytes} bytes, the chunk holds {expected}"
        )));
    }
    let mut out = vec![0u8; expected];
    // SAFETY: the header was validated against `frame.len()` above, and `out` is valid for
    // `expected` bytes, the size the frame declares (checked above).
    let n = unsafe {
        blosc_src::blosc_decompress_ctx(
            frame.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            out.len(),
            1,
        )
    };
    if n < 0 || n as usize != expected {
        return Err(bad(&format!("decoding failed (c-blosc returned {n})")));
    }
    Ok(out)
}

/// Byte size of one element of a numeric (or bool-enum) dataset; `None` for other types.
fn element_size(dtype: &DType) -> Option<usize> {
    Some(match dtype {
        DType::I8 | DType::U8 | DType::Enum(_) => 1,
        DType::I16 | DType::U16 => 2,
        DType::F32 | DType::I32 | DType::U32 => 4,
        DType::F64 | DType::I64 | DType::U64 => 8,
        _ => return None,
    })
}

/// Little-endian bytes (what h5py writes on every platform numpy runs on) into typed values.
fn typed(dtype: &DType, bytes: &[u8]) -> Option<Data> {
    macro_rules! le {
        ($t:ty, $n:literal) => {
            bytes
                .chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $n])))
                .collect()
        };
    }
    Some(match dtype {
        DType::F32 => Data::F32(le!(f32, 4)),
        DType::F64 => Data::F64(le!(f64, 8)),
        DType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
        DType::I16 => Data::I16(le!(i16, 2)),
        DType::I32 => Data::I32(le!(i32, 4)),
        DType::I64 => Data::I64(le!(i64, 8)),
        DType::U8 => Data::U8(bytes.to_vec()),
        DType::U16 => Data::U16(le!(u16, 2)),
        DType::U32 => Data::U32(le!(u32, 4)),
        DType::U64 => Data::U64(le!(u64, 8)),
        DType::Enum(_) => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
        _ => return None,
    })
}

/// Reads a whole Blosc-compressed dataset of `path_on_disk` (then the rows asked for).
pub(super) fn read(
    ds: &Dataset,
    path_on_disk: &std::path::Path,
    file: &str,
    key: &str,
    rows: Option<std::ops::Range<usize>>,
) -> Result<Data> {
    let fail = |e: hdf5_pure::Error| format_err(file, key, e.to_string());
    let pipeline = ds.filters();
    if pipeline != [FILTER_BLOSC] {
        return Err(format_err(
            file,
            key,
            format!(
                "HDF5 filter pipeline {pipeline:?}: Blosc (32001) is read only on its own; \
                 re-encode the file with gzip, e.g. `h5repack -f GZIP=4 in.h5ad out.h5ad`"
            ),
        ));
    }
    let dtype = ds.dtype().map_err(fail)?;
    let esize = element_size(&dtype).ok_or_else(|| {
        format_err(
            file,
            key,
            format!("Blosc-compressed {dtype} elements are not read (only numbers and bools)"),
        )
    })?;
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let shape: Vec<usize> = ds
        .shape()
        .map_err(fail)?
        .into_iter()
        .map(to_usize)
        .collect();
    let chunk: Vec<usize> = ds
        .chunk_shape()
        .map_err(fail)?
        .ok_or_else(|| format_err(file, key, "a filtered dataset that is not chunked".into()))?
        .into_iter()
        .map(to_usize)
        .collect();
    if chunk.len() != shape.len() || chunk.contains(&0) {
        return Err(format_err(
            file,
            key,
            format!("chunk shape {chunk:?} does not fit shape {shape:?}"),
        ));
    }
    // sizes were checked against memory by the caller; these products cannot overflow then,
    // but a damaged chunk shape is checked here on its own
    let total = shape.iter().try_fold(esize, |a, &d| a.checked_mul(d));
    let chunk_bytes = chunk.iter().try_fold(esize, |a, &d| a.checked_mul(d));
    let (Some(total), Some(chunk_bytes)) = (total, chunk_bytes) else {
        return Err(format_err(file, key, "declared sizes overflow".into()));
    };
    super::store::check_declared_size(file, key, &chunk, esize)?;
    let disk = std::fs::File::open(path_on_disk).map_err(|e| Error::Io {
        path: path_on_disk.into(),
        source: e,
    })?;
    let disk_len = disk.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = vec![0u8; total];
    let rank = shape.len();
    for c in ds.chunks().map_err(fail)? {
        let end = c.address.checked_add(c.storage_size);
        if end.is_none_or(|e| e > disk_len) || c.offset.len() != rank {
            return Err(format_err(
                file,
                key,
                format!("a chunk lies outside the file (offset {})", c.address),
            ));
        }
        let mut stored = vec![0u8; to_usize(c.storage_size)];
        disk.read_exact_at(&mut stored, c.address)
            .map_err(|e| Error::Io {
                path: path_on_disk.into(),
                source: e,
            })?;
        let decoded = if c.filter_mask & 1 != 0 {
            // the writer skipped Blosc for this chunk: stored as is
            if stored.len() != chunk_bytes {
                return Err(format_err(
                    file,
                    key,
                    "an unfiltered chunk of the wrong size".into(),
                ));
            }
            stored
        } else {
            decode_frame(&stored, chunk_bytes, file, key)?
        };
        let origin: Vec<usize> = c.offset.iter().map(|&o| to_usize(o)).collect();
        if origin.iter().zip(&shape).any(|(&o, &n)| o >= n) {
            return Err(format_err(
                file,
                key,
                format!("a chunk at {origin:?} lies outside shape {shape:?}"),
            ));
        }
        place_chunk(&decoded, &origin, &chunk, &shape, esize, &mut out);
    }
    let bytes = match rows {
        // the caller checked the range against the first dimension
        Some(r) => {
            let row_bytes = esize * shape.iter().skip(1).product::<usize>();
            &out[r.start * row_bytes..r.end * row_bytes]
        }
        None => &out[..],
    };
    typed(&dtype, bytes)
        .ok_or_else(|| format_err(file, key, format!("unsupported element type {dtype}")))
}

/// Copies a decoded chunk (full chunk shape, row-major) into the dataset buffer; the parts of
/// edge chunks beyond the dataset's shape are padding and are dropped.
fn place_chunk(
    chunk_data: &[u8],
    origin: &[usize],
    chunk: &[usize],
    shape: &[usize],
    esize: usize,
    out: &mut [u8],
) {
    let rank = shape.len();
    if rank == 0 {
        let n = esize.min(chunk_data.len()).min(out.len());
        out[..n].copy_from_slice(&chunk_data[..n]);
        return;
    }
    // elements of the last dimension that lie inside the dataset: one contiguous run per row
    let run = chunk[rank - 1].min(shape[rank - 1].saturating_sub(origin[rank - 1]));
    if run == 0 {
        return;
    }
    let outer: Vec<usize> = (0..rank - 1)
        .map(|d| chunk[d].min(shape[d].saturating_sub(origin[d])))
        .collect();
    if outer.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; rank - 1];
    loop {
        let (mut src, mut dst) = (0usize, 0usize);
        for d in 0..rank - 1 {
            src = src * chunk[d] + idx[d];
            dst = dst * shape[d] + origin[d] + idx[d];
        }
        src = (src * chunk[rank - 1]) * esize;
        dst = (dst * shape[rank - 1] + origin[rank - 1]) * esize;
        let len = run * esize;
        out[dst..dst + len].copy_from_slice(&chunk_data[src..src + len]);
        // next index of the outer dimensions, last fastest
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < outer[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_chunks_are_cut_to_the_shape() {
        // a 3 × 3 dataset of bytes in 2 × 2 chunks
        let shape = [3, 3];
        let chunk = [2, 2];
        let mut out = vec![0u8; 9];
        for (origin, vals) in [
            ([0, 0], [1, 2, 4, 5]),
            ([0, 2], [3, 99, 6, 99]),
            ([2, 0], [7, 8, 99, 99]),
            ([2, 2], [9, 99, 99, 99]),
        ] {
            place_chunk(&vals, &origin, &chunk, &shape, 1, &mut out);
        }
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn damaged_frames_are_errors() {
        assert!(decode_frame(&[0; 8], 4, "f", "k").is_err());
        let mut header = [0u8; 32];
        header[0] = 2; // version
        header[4..8].copy_from_slice(&4u32.to_le_bytes()); // nbytes
        header[12..16].copy_from_slice(&1000u32.to_le_bytes()); // cbytes beyond the buffer
        assert!(decode_frame(&header, 4, "f", "k").is_err());
    }
}
