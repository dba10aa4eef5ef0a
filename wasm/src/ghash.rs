//! GHASH (NIST SP 800-38D §6.4) in constant time, from 64-bit integer multiplications.
//!
//! A GF(2^128) product needs carry-less multiplication, which WebAssembly does not have.
//! It is built from ordinary integer multiplication with "holes" (the technique of
//! BearSSL's ghash_ctmul64): split each 64-bit operand into four words that keep only bits
//! 0 mod 4, 1 mod 4, 2 mod 4, 3 mod 4. In the integer product of two such words, the bits of
//! one residue class sit three zero bits apart, so the carries of up to 15 coinciding terms
//! land only in the other classes, which a mask removes. Within the low 64 bits of a
//! product at most 15 terms coincide below bit 60 and the 16th only at bits 60..63, whose
//! carry leaves the word; so the low half is exact. The high half comes from the same
//! multiply on bit-reversed operands: rev(a)·rev(b) reversed is the product shifted down
//! by 63 bits.
//!
//! Constant time: the code is straight-line masks, shifts, XORs and 64-bit multiplies, with
//! no branch or memory index that depends on H, the accumulator or the data. 64-bit
//! integer multiplication runs in data-independent time on the 64-bit CPUs that run
//! WebAssembly engines (x86-64 `imul`, AArch64 `mul`).
//!
//! Speed: the 128-bit product uses Karatsuba (three 64-bit products, each a low half and a
//! reversed half, so six `bmul` of 16 multiplies). Eight blocks are absorbed per group as
//! Σ X_i·H^(8-i) with precomputed powers of H; the products are summed unreduced, and the
//! bit reversals, the shift and the reduction are paid once per group rather than per block.
//!
//! Bit order: a block is loaded as two big-endian words (hi = bytes 0..8); integer bit 127
//! holds the coefficient of x^0, as in SP 800-38D's right-shift formulation.

const M0: u64 = 0x1111_1111_1111_1111;
const M1: u64 = 0x2222_2222_2222_2222;
const M2: u64 = 0x4444_4444_4444_4444;
const M3: u64 = 0x8888_8888_8888_8888;

/// Blocks absorbed per reduction.
pub const GROUP: usize = 8;

/// An operand split into its four residue classes of bit positions.
type Split = [u64; 4];

#[inline(always)]
fn split(y: u64) -> Split {
    [y & M0, y & M1, y & M2, y & M3]
}

/// Low 64 bits of the carry-less product of `x` and the pre-split `y`.
#[inline(always)]
fn bmul(x: u64, y: &Split) -> u64 {
    let x0 = x & M0;
    let x1 = x & M1;
    let x2 = x & M2;
    let x3 = x & M3;
    let m = |a: u64, b: u64| a.wrapping_mul(b);
    // Class c of the product collects the pairs of input classes that add up to c mod 4.
    let z0 = m(x0, y[0]) ^ m(x1, y[3]) ^ m(x2, y[2]) ^ m(x3, y[1]);
    let z1 = m(x0, y[1]) ^ m(x1, y[0]) ^ m(x2, y[3]) ^ m(x3, y[2]);
    let z2 = m(x0, y[2]) ^ m(x1, y[1]) ^ m(x2, y[0]) ^ m(x3, y[3]);
    let z3 = m(x0, y[3]) ^ m(x1, y[2]) ^ m(x2, y[1]) ^ m(x3, y[0]);
    (z0 & M0) | (z1 & M1) | (z2 & M2) | (z3 & M3)
}

/// Bit reversal of a 64-bit word (shifts and masks only).
#[inline(always)]
fn rev64(mut x: u64) -> u64 {
    x = ((x & 0x5555_5555_5555_5555) << 1) | ((x >> 1) & 0x5555_5555_5555_5555);
    x = ((x & 0x3333_3333_3333_3333) << 2) | ((x >> 2) & 0x3333_3333_3333_3333);
    x = ((x & 0x0f0f_0f0f_0f0f_0f0f) << 4) | ((x >> 4) & 0x0f0f_0f0f_0f0f_0f0f);
    x = ((x & 0x00ff_00ff_00ff_00ff) << 8) | ((x >> 8) & 0x00ff_00ff_00ff_00ff);
    x = ((x & 0x0000_ffff_0000_ffff) << 16) | ((x >> 16) & 0x0000_ffff_0000_ffff);
    x.rotate_left(32)
}

/// A block as its two big-endian words (hi, lo) and their bit reversals, with SIMD: the
/// reversal of a big-endian word is the little-endian word with the bits of each byte
/// reversed, three shift-and-mask steps for all sixteen bytes at once.
#[inline(always)]
fn load_block(b: &[u8]) -> (u64, u64, u64, u64) {
    use core::arch::wasm32::*;
    assert!(b.len() >= 16);
    // SAFETY: 16 readable bytes (checked above); unaligned loads are allowed.
    let v = unsafe { v128_load(b.as_ptr() as *const v128) };
    let be = i8x16_shuffle::<7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8>(v, v);
    let step = |r: v128, n: u32, m: u8| {
        let m = u8x16_splat(m);
        v128_or(v128_and(u64x2_shr(r, n), m), u64x2_shl(v128_and(r, m), n))
    };
    let r = step(step(step(v, 1, 0x55), 2, 0x33), 4, 0x0f);
    (u64x2_extract_lane::<0>(be), u64x2_extract_lane::<1>(be), u64x2_extract_lane::<0>(r), u64x2_extract_lane::<1>(r))
}

#[inline(always)]
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Adds one block's six half-products (block words a1, a0 and their reversals r1, r0, times
/// the power `p`) into the unreduced sums `acc` = [L_lo, L_hi, L_mid, R_lo, R_hi, R_mid].
/// Out of line on purpose: one block per call keeps V8's register pressure low enough that it
/// spills little (measured 7% faster per MiB than inlining it into the group loop, or than
/// calling each `bmul` out of line).
#[inline(never)]
fn absorb_block(acc: &mut [u64; 6], p: &Power, a1: u64, a0: u64, r1: u64, r0: u64) {
    acc[0] ^= bmul(a0, &p.lo);
    acc[1] ^= bmul(a1, &p.hi);
    acc[2] ^= bmul(a0 ^ a1, &p.mid);
    acc[3] ^= bmul(r0, &p.rlo);
    acc[4] ^= bmul(r1, &p.rhi);
    acc[5] ^= bmul(r0 ^ r1, &p.rmid);
}

/// One power of H, ready to multiply: the Karatsuba operands lo, hi, lo^hi and their bit
/// reversals, each split into classes.
#[derive(Clone, Copy)]
struct Power {
    lo: Split,
    hi: Split,
    mid: Split,
    rlo: Split,
    rhi: Split,
    rmid: Split,
}

const ZERO_POWER: Power = Power { lo: [0; 4], hi: [0; 4], mid: [0; 4], rlo: [0; 4], rhi: [0; 4], rmid: [0; 4] };

impl Power {
    fn new(hi: u64, lo: u64) -> Power {
        let (rhi, rlo) = (rev64(hi), rev64(lo));
        Power {
            lo: split(lo),
            hi: split(hi),
            mid: split(lo ^ hi),
            rlo: split(rlo),
            rhi: split(rhi),
            rmid: split(rlo ^ rhi),
        }
    }
}

/// The hash key H = E_K(0^128) as the powers H^1 ..= H^8.
pub struct GhashKey {
    pow: [Power; GROUP],
}

impl GhashKey {
    pub const fn zeroed() -> Self {
        GhashKey { pow: [ZERO_POWER; GROUP] }
    }

    pub fn set(&mut self, h: &[u8; 16]) {
        let (hhi, hlo) = (be64(&h[0..8]), be64(&h[8..16]));
        self.pow[0] = Power::new(hhi, hlo);
        let mut p = (hhi, hlo);
        for k in 1..GROUP {
            // p·H: a one-block group with Y = 0 and X = p.
            let mut blk = [0u8; 16];
            blk[0..8].copy_from_slice(&p.0.to_be_bytes());
            blk[8..16].copy_from_slice(&p.1.to_be_bytes());
            p = self.absorb((0, 0), &blk, 1);
            self.pow[k] = Power::new(p.0, p.1);
            wipe_bytes(&mut blk);
        }
    }

    pub fn wipe(&mut self) {
        for p in self.pow.iter_mut() {
            // SAFETY: a valid, aligned, exclusive place.
            unsafe { core::ptr::write_volatile(p, ZERO_POWER) };
        }
    }

    /// Absorbs `k` (1..=8) whole blocks into the accumulator `y` = (hi, lo):
    /// y <- (y + X_0)·H^k + X_1·H^(k-1) + ... + X_(k-1)·H. Same result as k Horner steps.
    #[inline(always)]
    fn absorb(&self, y: (u64, u64), blocks: &[u8], k: usize) -> (u64, u64) {
        // Unreduced sums of the six half-products: low halves, and reversed high halves.
        let mut acc = [0u64; 6];
        for j in 0..k {
            let (mut a1, mut a0, mut r1, mut r0) = load_block(&blocks[16 * j..16 * j + 16]);
            if j == 0 {
                a1 ^= y.0;
                a0 ^= y.1;
                r1 ^= rev64(y.0);
                r0 ^= rev64(y.1);
            }
            absorb_block(&mut acc, &self.pow[k - 1 - j], a1, a0, r1, r0);
        }
        let [l_lo, l_hi, l_mid, r_lo, r_hi, r_mid] = acc;
        // `acc` went through memory (the shadow stack) for the call; it carries H-dependent sums.
        for x in acc.iter_mut() {
            // SAFETY: a valid, aligned, exclusive place.
            unsafe { core::ptr::write_volatile(x, 0) };
        }
        // Each 64x64 product P, shifted left by one (the reflected bit order of GCM makes the
        // 255-bit product one bit short of its 256-bit image): high word rev(R), low word L<<1.
        let (lo_h, lo_l) = (rev64(r_lo), l_lo << 1);
        let (hi_h, hi_l) = (rev64(r_hi), l_hi << 1);
        let mid_h = rev64(r_mid) ^ lo_h ^ hi_h;
        let mid_l = (l_mid << 1) ^ lo_l ^ hi_l;
        let w0 = lo_l;
        let mut w1 = lo_h ^ mid_l;
        let mut w2 = hi_l ^ mid_h;
        let mut w3 = hi_h;
        // Reduce modulo x^128 + x^7 + x^2 + x + 1 (SP 800-38D §6.3): w0 holds x^192..x^255
        // and w1 x^128..x^191, each bit-reflected; x^(128+m) = x^m·(1 + x + x^2 + x^7).
        w2 ^= w0 ^ (w0 >> 1) ^ (w0 >> 2) ^ (w0 >> 7);
        w1 ^= (w0 << 63) ^ (w0 << 62) ^ (w0 << 57);
        w3 ^= w1 ^ (w1 >> 1) ^ (w1 >> 2) ^ (w1 >> 7);
        w2 ^= (w1 << 63) ^ (w1 << 62) ^ (w1 << 57);
        (w3, w2)
    }

    /// GHASH_H(A, C) as GCM uses it (SP 800-38D §7.1 step 5): A and C each zero-padded to
    /// whole blocks, then the block [len(A)]64 ‖ [len(C)]64 in bits.
    pub fn gcm(&self, aad: &[u8], c: &[u8]) -> [u8; 16] {
        let mut y = self.absorb_padded((0, 0), aad);
        y = self.absorb_padded(y, c);
        let mut lens = [0u8; 16];
        lens[0..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..16].copy_from_slice(&((c.len() as u64) * 8).to_be_bytes());
        y = self.absorb(y, &lens, 1);
        let mut s = [0u8; 16];
        s[0..8].copy_from_slice(&y.0.to_be_bytes());
        s[8..16].copy_from_slice(&y.1.to_be_bytes());
        s
    }

    /// Absorbs `data` zero-padded to whole blocks, eight blocks per reduction.
    fn absorb_padded(&self, mut y: (u64, u64), data: &[u8]) -> (u64, u64) {
        let whole = data.len() / (16 * GROUP) * (16 * GROUP);
        for chunk in data[..whole].chunks_exact(16 * GROUP) {
            y = self.absorb(y, chunk, GROUP);
        }
        let rest = &data[whole..];
        if !rest.is_empty() {
            let mut tail = [0u8; 16 * GROUP];
            tail[..rest.len()].copy_from_slice(rest);
            let nblocks = (rest.len() + 15) / 16;
            y = self.absorb(y, &tail[..16 * nblocks], nblocks);
        }
        y
    }
}

pub fn wipe_bytes(b: &mut [u8]) {
    for x in b.iter_mut() {
        // SAFETY: a valid, exclusive place.
        unsafe { core::ptr::write_volatile(x, 0) };
    }
}
