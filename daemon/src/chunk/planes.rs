//! Byte planes: a chunk of fixed-width numbers rearranged so that the first byte of every
//! number comes first, then every second byte, and so on (the "shuffle" of Blosc and HDF5).
//!
//! Model weights are arrays of 2- or 4-byte floats whose sign-and-exponent bytes repeat a few
//! values while the low mantissa bytes are noise. Interleaved, zstd sees one mixed stream;
//! split into planes, it compresses the exponent planes well and stores the noise planes
//! as raw blocks, which also decode much faster. On float16 weights: ratio 0.918 → 0.843,
//! decompression 757 → 1745 MiB/s (zstd level 1, 4 MiB chunks).
//!
//! The chunk need not start on a number: a chunk cut at an odd offset just has its planes in
//! another order. Bytes past the last whole number stay at the end, in order.

/// Writes the planes of `data`, taken as numbers of `width` bytes, to `out` (replacing its
/// contents).
pub fn split(data: &[u8], width: usize, out: &mut Vec<u8>) {
    let whole = data.len() / width * width;
    out.clear();
    out.reserve(data.len());
    for byte in 0..width {
        // Not `data[byte..whole]`: with fewer bytes than one number, `byte` is past `whole`.
        out.extend(data[..whole].iter().skip(byte).step_by(width));
    }
    out.extend_from_slice(&data[whole..]);
}

/// Bytes joined at a time by [`join_with`] (a stack buffer, small enough for any thread).
const BLOCK_BYTES: usize = 16 * 1024;

/// Undoes [`split`]: interleaves the planes in `planes` back into `out` (replacing its
/// contents).
pub fn join(planes: &[u8], width: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(planes.len());
    join_with(planes, width, |bytes| out.extend_from_slice(bytes));
}

/// [`join`] handing the interleaved bytes to `sink` in order, a block at a time, so they can
/// be hashed without being kept.
pub fn join_with(planes: &[u8], width: usize, mut sink: impl FnMut(&[u8])) {
    let count = planes.len() / width;
    let whole = count * width;
    let mut block = [0u8; BLOCK_BYTES];
    let per_block = BLOCK_BYTES / width;
    let mut first = 0;
    while first < count {
        let numbers = per_block.min(count - first);
        let out = &mut block[..numbers * width];
        let plane = |byte: usize| &planes[byte * count + first..byte * count + first + numbers];
        match width {
            2 => {
                let bytes = plane(0).iter().zip(plane(1));
                for (number, (&a, &b)) in out.chunks_exact_mut(2).zip(bytes) {
                    number.copy_from_slice(&[a, b]);
                }
            }
            4 => {
                let bytes = plane(0).iter().zip(plane(1)).zip(plane(2)).zip(plane(3));
                for (number, (((&a, &b), &c), &d)) in out.chunks_exact_mut(4).zip(bytes) {
                    number.copy_from_slice(&[a, b, c, d]);
                }
            }
            _ => {
                for byte in 0..width {
                    let slots = out[byte..].iter_mut().step_by(width);
                    for (slot, &value) in slots.zip(plane(byte)) {
                        *slot = value;
                    }
                }
            }
        }
        sink(out);
        first += numbers;
    }
    sink(&planes[whole..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn planes_group_the_nth_byte_of_every_number() {
        let mut out = Vec::new();
        split(&[1, 2, 1, 2, 1, 2, 9], 2, &mut out);
        assert_eq!(out, [1, 1, 1, 2, 2, 2, 9]);
        split(&[1, 2, 3, 4, 1, 2, 3, 4], 4, &mut out);
        assert_eq!(out, [1, 1, 2, 2, 3, 3, 4, 4]);
    }

    proptest! {
        #[test]
        fn join_undoes_split(data in proptest::collection::vec(any::<u8>(), 0..70_000), width in 1usize..9) {
            let (mut planes, mut back) = (Vec::new(), vec![7u8; 5]);
            split(&data, width, &mut planes);
            prop_assert_eq!(planes.len(), data.len());
            join(&planes, width, &mut back);
            prop_assert_eq!(&back, &data);
            let mut streamed = Vec::new();
            join_with(&planes, width, |bytes| streamed.extend_from_slice(bytes));
            prop_assert_eq!(streamed, data);
        }
    }
}
