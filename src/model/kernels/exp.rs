//! e^x for x ≤ 0 in plain f32 arithmetic the compiler turns into SIMD: softmax (after the max is
//! subtracted) and erf (of −z²) only need that half of the range.

/// `a · b + c`, as one fused instruction where `fma`. Callers pass a constant: `true` only in code
/// compiled for FMA (`multiversion::target::target_cfg_f!(target_feature = "fma")`), because
/// without the instruction `mul_add` is a libm call per element.
#[inline(always)]
pub fn mul_add(a: f32, b: f32, c: f32, fma: bool) -> f32 {
    if fma {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x for x ≤ 0 (clamped at −87, where it is ~1e-38): 2^n · e^r with |r| ≤ ln2/2, e^r by its
/// Taylor polynomial to degree 7 (< 2e-8; coefficients multiplied, never divided by), n rounded by
/// the 1.5·2^23 trick so everything stays in SIMD registers; fused multiply-adds where `fma`
/// ([`mul_add`]).
#[inline(always)]
pub fn exp_neg(x: f32, fma: bool) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.max(-87.0);
    let shifted = mul_add(x, std::f32::consts::LOG2_E, MAGIC, fma);
    let n = shifted - MAGIC;
    // ln 2 in two parts (Cody-Waite), so n · ln2 stays exact to f32 precision for every n.
    let r = mul_add(n, 2.121_944_4e-4, mul_add(n, -0.693_359_4, x, fma), fma);
    // The degree-7 polynomial by Estrin's scheme (pairs, then powers of r²): a dependency chain of
    // 4 steps instead of Horner's 14, so the vector units overlap the lanes' work.
    let r2 = r * r;
    let low = mul_add(r2, mul_add(r, 1.0 / 6.0, 0.5, fma), 1.0 + r, fma);
    let high = mul_add(r2, mul_add(r, 1.0 / 5040.0, 1.0 / 720.0, fma), mul_add(r, 1.0 / 120.0, 1.0 / 24.0, fma), fma);
    let p = mul_add(r2 * r2, high, low, fma);
    // n's integer value sits in the low mantissa bits of `shifted`.
    let bits = (shifted.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23;
    p * f32::from_bits(bits as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_its_range_with_and_without_fma() {
        for fma in [false, true] {
            for i in 0..=8700 {
                let x = -(i as f32) * 1e-2;
                let rel = ((exp_neg(x, fma) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
                assert!(rel < 1e-6, "exp({x}), fma {fma}: relative error {rel}");
            }
            assert_eq!(exp_neg(0.0, fma), 1.0);
            assert!(exp_neg(-1000.0, fma) < 1e-37);
        }
    }
}
