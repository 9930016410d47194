//! Strided row-major matrix views, so a GEMM can read and write sub-blocks in place: one attention
//! head's columns of the packed `tokens × 3·hidden` QKV matrix, and its context columns of
//! `tokens × hidden`, with no permute copies.
//!
//! [`MatMut`] holds a raw pointer so that disjoint column blocks of the same rows can go to
//! different threads, which `&mut [T]` cannot express. Soundness rests on two rules that every
//! constructor and split below keeps: a view only covers memory inside the slice it was made
//! from (bounds checked), and splitting consumes the view and returns non-overlapping halves.
#![allow(unsafe_code)]

use std::marker::PhantomData;

/// Elements a `rows × cols` view with this row stride spans.
fn span(rows: usize, cols: usize, stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * stride + cols
    }
}

/// A read-only `rows × cols` view, row `i` starting at `i · stride`.
#[derive(Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    stride: usize,
}

impl<T> Clone for MatRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MatRef<'_, T> {}

impl<'a, T> MatRef<'a, T> {
    /// A view of `data`; panics if it does not hold the rows the stride implies.
    pub fn new(data: &'a [T], rows: usize, cols: usize, stride: usize) -> Self {
        assert!(stride >= cols, "view: stride {stride} < cols {cols}");
        assert!(
            data.len() >= span(rows, cols, stride),
            "view: {} values cannot hold {rows} × {cols} at stride {stride}",
            data.len()
        );
        Self { data, rows, cols, stride }
    }

    /// A packed `rows × cols` view.
    pub fn dense(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Rows `start .. start + rows`.
    pub fn sub_rows(&self, start: usize, rows: usize) -> Self {
        assert!(start + rows <= self.rows, "view: rows {start}+{rows} of {}", self.rows);
        let at = (start * self.stride).min(self.data.len());
        Self { data: &self.data[at..], rows, ..*self }
    }

    /// Columns `start .. start + cols`.
    pub fn sub_cols(&self, start: usize, cols: usize) -> Self {
        assert!(start + cols <= self.cols, "view: cols {start}+{cols} of {}", self.cols);
        let at = start.min(self.data.len());
        Self { data: &self.data[at..], cols, ..*self }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &'a [T] {
        assert!(i < self.rows);
        &self.data[i * self.stride..i * self.stride + self.cols]
    }

    pub fn as_ptr(&self) -> *const T {
        self.data.as_ptr()
    }
}

/// A writable `rows × cols` view, row `i` starting at `i · stride`; see the module doc for why it
/// holds a pointer.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    ptr: *mut T,
    rows: usize,
    cols: usize,
    stride: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a `MatMut` is an exclusive borrow of the elements it covers (no other view covers them),
// so moving it to another thread is as safe as moving a `&mut [T]`.
unsafe impl<T: Send> Send for MatMut<'_, T> {}

impl<'a, T> MatMut<'a, T> {
    /// A view of `data`; panics if it does not hold the rows the stride implies.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, stride: usize) -> Self {
        assert!(stride >= cols, "view: stride {stride} < cols {cols}");
        assert!(
            data.len() >= span(rows, cols, stride),
            "view: {} values cannot hold {rows} × {cols} at stride {stride}",
            data.len()
        );
        Self { ptr: data.as_mut_ptr(), rows, cols, stride, _borrow: PhantomData }
    }

    /// A packed `rows × cols` view.
    pub fn dense(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The first `at` rows and the rest.
    pub fn split_rows(self, at: usize) -> (Self, Self) {
        assert!(at <= self.rows, "view: split at row {at} of {}", self.rows);
        // SAFETY: `at · stride` is within the covered span (or one past it when the rest is
        // empty); the two halves cover disjoint rows.
        let empty = self.rows - at == 0 || self.cols == 0;
        let rest = unsafe { self.ptr.add(if empty { 0 } else { at * self.stride }) };
        let top = Self { rows: at, ..self };
        let bottom = Self { ptr: rest, rows: self.rows - at, _borrow: PhantomData, ..self };
        (top, bottom)
    }

    /// The first `at` columns and the rest (same rows, same stride).
    pub fn split_cols(self, at: usize) -> (Self, Self) {
        assert!(at <= self.cols, "view: split at column {at} of {}", self.cols);
        // SAFETY: `at ≤ cols ≤ stride`, inside the first row; the halves cover disjoint columns of
        // every row.
        let empty = self.cols - at == 0 || self.rows == 0;
        let right = unsafe { self.ptr.add(if empty { 0 } else { at }) };
        let left = Self { cols: at, ..self };
        let right = Self { ptr: right, cols: self.cols - at, _borrow: PhantomData, ..self };
        (left, right)
    }

    /// Row `i`.
    pub fn row(&mut self, i: usize) -> &mut [T] {
        assert!(i < self.rows);
        // SAFETY: row `i` is `cols` elements inside the covered span, exclusively ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.stride), self.cols) }
    }

    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_disjoint_blocks() {
        let mut data: Vec<u32> = (0..24).collect();
        let view = MatMut::new(&mut data, 4, 5, 6);
        let (top, bottom) = view.split_rows(1);
        let (mut left, mut right) = bottom.split_cols(2);
        assert_eq!((top.rows(), left.cols(), right.cols()), (1, 2, 3));
        assert_eq!(left.row(0), &[6, 7]);
        assert_eq!(right.row(2), &[20, 21, 22]);
        right.row(0).fill(0);
        assert_eq!(&data[6..12], &[6, 7, 0, 0, 0, 11]);
        let r = MatRef::new(&data, 4, 5, 6).sub_rows(1, 2).sub_cols(1, 2);
        assert_eq!((r.row(0), r.row(1)), (&[7u32, 0][..], &[13u32, 14][..]));
    }

    #[test]
    #[should_panic(expected = "cannot hold")]
    fn a_view_past_its_slice_is_refused() {
        let data = [0f32; 10];
        let _ = MatRef::new(&data, 3, 2, 5);
    }
}
