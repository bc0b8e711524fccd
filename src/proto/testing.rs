//! The split-everywhere harness ("shotgun", after hyper's test): a sans-IO reader must give
//! the same result however its input is cut into reads.
//!
//! Owns only the ways of cutting an input and the comparison of their outcomes; what a run
//! feeds and what its outcome holds is the caller's. Used by the unit tests of the head
//! reader, the chunked decoder and the exchange, and by `tests/proto_props.rs`; test-only,
//! reachable through a hidden path.

use std::fmt::Debug;

/// Inputs up to this many bytes are also cut in three at every pair of points: that costs
/// a cubic number of bytes fed, so longer inputs get the two-way cuts only.
pub const THREE_WAY_MAX: usize = 48;

/// Runs `run` on `input` fed whole, byte by byte, cut in two at every point and (up to
/// [`THREE_WAY_MAX`] bytes) in three at every pair of points; asserts that every way gives
/// the outcome of the whole input, and returns it.
///
/// `run` gets the pieces in order and says what came of feeding them to a fresh reader. A
/// run whose outcome depends on where reads end legitimately (e.g. how many bytes were
/// taken before an error) must leave that out of its outcome.
///
/// # Panics
/// When two ways disagree, naming the cut.
pub fn split_everywhere<T: PartialEq + Debug>(input: &[u8], run: impl FnMut(&[&[u8]]) -> T) -> T {
    split_everywhere_and(input, &[], run)
}

/// [`split_everywhere`], and also cut at `cuts` (each taken modulo `input.len() + 1`, in
/// any order, repeats ignored), with and without an empty read before each piece: the way
/// property tests add cuts they generate.
///
/// # Panics
/// When two ways disagree, naming the cut.
pub fn split_everywhere_and<T: PartialEq + Debug>(
    input: &[u8],
    cuts: &[usize],
    mut run: impl FnMut(&[&[u8]]) -> T,
) -> T {
    let whole = run(&[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(&bytes), whole, "byte by byte");
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(run(&[a, b]), whole, "cut at {i}");
    }
    if input.len() <= THREE_WAY_MAX {
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let pieces = [&input[..i], &input[i..j], &input[j..]];
                assert_eq!(run(&pieces), whole, "cut at {i} and {j}");
            }
        }
    }
    if !cuts.is_empty() {
        let pieces = cut_at(input, cuts);
        assert_eq!(run(&pieces), whole, "cut at {cuts:?}");
        let with_empty: Vec<&[u8]> = pieces.iter().flat_map(|p| [&[][..], p]).collect();
        assert_eq!(
            run(&with_empty),
            whole,
            "cut at {cuts:?}, empty reads between"
        );
    }
    whole
}

/// `input` cut at `cuts` (each taken modulo `input.len() + 1`, sorted, deduplicated).
pub fn cut_at<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut pieces = Vec::with_capacity(points.len() + 1);
    let mut from = 0;
    for p in points {
        pieces.push(&input[from..p]);
        from = p;
    }
    pieces.push(&input[from..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_is_tried_and_agreement_returned() {
        let mut calls = 0;
        let total = split_everywhere(b"abc", |pieces| {
            calls += 1;
            assert_eq!(pieces.concat(), b"abc");
            pieces.iter().map(|p| p.len()).sum::<usize>()
        });
        // whole, 3 single bytes, 4 two-way cuts, 10 three-way cuts
        assert_eq!((total, calls), (3, 1 + 1 + 4 + 10));
    }

    #[test]
    #[should_panic(expected = "cut at 1")]
    fn disagreement_names_the_cut() {
        split_everywhere(b"abc", |pieces| pieces.len() != 2 || pieces[0].len() != 1);
    }

    #[test]
    fn generated_cuts_wrap_sort_and_dedup() {
        assert_eq!(cut_at(b"abcd", &[3, 1, 6, 8]), [&b"a"[..], b"bc", b"d"]);
        assert_eq!(cut_at(b"", &[0, 5]), [&b""[..], b""]);
    }
}
