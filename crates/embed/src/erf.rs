//! The error function, which the standard library lacks and exact GELU needs.
//!
//! The method is the one of Sun Microsystems' fdlibm `s_erf.c` (also used by musl and FreeBSD):
//! the real line is cut into four intervals and on each `erf` (or `erfc`) is a rational function
//! fitted by minimax, with a final `exp` for the tail. The coefficients below are that published
//! fit. Its error is below one unit in the last place of an `f64`, far more than an `f32` model
//! needs; the short Abramowitz–Stegun formulas are off by up to 1.5e-7 absolute, which near zero
//! is a large relative error and visibly shifts GELU's output.
#![allow(clippy::excessive_precision, reason = "the coefficients are quoted as published; rounding them to f64 is the compiler's job")]

/// `2/sqrt(pi) - 1`, so that `erf(x) ≈ x + EFX * x` for tiny `x`.
const EFX: f64 = 1.283_791_670_955_125_863_16e-1;

// erf(x) = x + x * P(x²)/Q(x²) on |x| < 0.84375.
const PP: [f64; 5] = [
    1.283_791_670_955_125_585_61e-1,
    -3.250_421_072_470_014_993_70e-1,
    -2.848_174_957_559_851_047_66e-2,
    -5.770_270_296_489_441_591_57e-3,
    -2.376_301_665_665_016_260_84e-5,
];
const QQ: [f64; 5] = [
    3.979_172_239_591_553_528_19e-1,
    6.502_224_998_876_729_444_85e-2,
    5.081_306_281_875_765_627_76e-3,
    1.324_947_380_043_216_445_26e-4,
    -3.960_228_278_775_368_123_20e-6,
];

/// erf(1) rounded to 24 bits, the centre of the second interval.
const ERX: f64 = 8.450_629_115_104_675_292_97e-1;

// erf(x) = ERX + P(s)/Q(s) with s = |x| - 1 on 0.84375 <= |x| < 1.25.
const PA: [f64; 7] = [
    -2.362_118_560_752_659_440_77e-3,
    4.148_561_186_837_483_316_66e-1,
    -3.722_078_760_357_013_238_47e-1,
    3.183_466_199_011_617_536_74e-1,
    -1.108_946_942_823_966_774_76e-1,
    3.547_830_432_561_823_593_71e-2,
    -2.166_375_594_868_790_843_00e-3,
];
const QA: [f64; 6] = [
    1.064_208_804_008_442_282_86e-1,
    5.403_979_177_021_710_489_37e-1,
    7.182_865_441_419_626_628_68e-2,
    1.261_712_198_087_616_421_12e-1,
    1.363_708_391_202_905_073_62e-2,
    1.198_449_984_679_910_741_70e-2,
];

// erfc(x) = exp(-x² - 0.5625 + R(s)/S(s)) / x with s = 1/x², on 1.25 <= |x| < 1/0.35.
const RA: [f64; 8] = [
    -9.864_944_034_847_148_227_05e-3,
    -6.938_585_727_071_817_643_72e-1,
    -1.055_862_622_532_329_098_14e1,
    -6.237_533_245_032_600_603_96e1,
    -1.623_966_694_625_734_703_55e2,
    -1.846_050_929_067_110_359_94e2,
    -8.128_743_550_630_659_342_46e1,
    -9.814_329_344_169_145_485_92,
];
const SA: [f64; 8] = [
    1.965_127_166_743_925_712_92e1,
    1.376_577_541_435_190_426_00e2,
    4.345_658_774_752_292_288_21e2,
    6.453_872_717_332_678_803_36e2,
    4.290_081_400_275_678_333_86e2,
    1.086_350_055_417_794_351_34e2,
    6.570_249_770_319_281_701_35,
    -6.042_441_521_485_809_874_38e-2,
];

// The same form on 1/0.35 <= |x| < 6.
const RB: [f64; 7] = [
    -9.864_942_924_700_099_285_97e-3,
    -7.992_832_376_805_230_065_74e-1,
    -1.775_795_491_775_475_198_89e1,
    -1.606_363_848_558_219_160_62e2,
    -6.375_664_433_683_896_277_22e2,
    -1.025_095_131_611_077_249_54e3,
    -4.835_191_916_086_513_970_19e2,
];
const SB: [f64; 7] = [
    3.033_806_074_348_245_829_24e1,
    3.257_925_129_965_739_188_26e2,
    1.536_729_586_084_436_959_94e3,
    3.199_858_219_508_595_539_08e3,
    2.553_050_406_433_164_425_83e3,
    4.745_285_412_069_553_672_15e2,
    -2.244_095_244_658_581_833_62e1,
];

/// Evaluates `c[0] + x*c[1] + x²*c[2] + ...` by Horner's rule.
fn poly(x: f64, c: &[f64]) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
}

/// Evaluates `1 + x*c[0] + x²*c[1] + ...`, the denominators' shape.
fn poly1(x: f64, c: &[f64]) -> f64 {
    1.0 + x * poly(x, c)
}

/// The error function `erf(x) = 2/sqrt(pi) * ∫₀ˣ exp(-t²) dt`.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    if ax < 0.843_75 {
        if ax < f64::from_bits(0x3e30_0000_0000_0000) {
            // Below 2^-28 the cubic term is lost in rounding.
            return x + EFX * x;
        }
        let z = x * x;
        return x + x * (poly(z, &PP) / poly1(z, &QQ));
    }
    let magnitude = if ax < 1.25 {
        let s = ax - 1.0;
        ERX + poly(s, &PA) / poly1(s, &QA)
    } else if ax < 6.0 {
        let s = 1.0 / (ax * ax);
        let (r, q) = if ax < 1.0 / 0.35 { (poly(s, &RA), poly1(s, &SA)) } else { (poly(s, &RB), poly1(s, &SB)) };
        // `z` is `ax` with its low 32 bits cleared, so `z*z` is exact and the rounding error of
        // squaring moves into the small term `(z - ax)(z + ax)`, which is exact enough.
        let z = f64::from_bits(ax.to_bits() & 0xffff_ffff_0000_0000);
        let tail = (-z * z - 0.5625).exp() * ((z - ax) * (z + ax) + r / q).exp() / ax;
        1.0 - tail
    } else {
        // erfc(6) < 2.2e-17, below half an ulp of 1.
        1.0
    };
    magnitude.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::erf;

    /// Values of `math.erf` from CPython 3.11 (glibc's libm), printed with `repr`.
    const REFERENCE: [(f64, f64); 16] = [
        (0.0, 0.0),
        (1.0e-30, 1.1283791670955127e-30),
        (1.0e-05, 1.1283791670579e-05),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (0.84375, 0.7672256612323416),
        (1.0, 0.8427007929497149),
        (1.2, 0.9103139782296353),
        (1.25, 0.9229001282564582),
        (2.0, 0.9953222650189527),
        (2.5, 0.999593047982555),
        (3.0, 0.9999779095030014),
        (4.0, 0.9999999845827421),
        (5.5, 0.9999999999999927),
        (-0.7, -0.6778011938374184),
        (-3.3, -0.9999969422902035),
    ];

    #[test]
    fn erf_matches_libm_to_a_few_ulp() {
        for (x, want) in REFERENCE {
            let got = erf(x);
            let tolerance = 4.0 * f64::EPSILON * want.abs().max(f64::MIN_POSITIVE);
            assert!((got - want).abs() <= tolerance, "erf({x}) = {got}, want {want}");
        }
        assert!(erf(f64::NAN).is_nan());
        assert_eq!(erf(40.0), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
    }
}
