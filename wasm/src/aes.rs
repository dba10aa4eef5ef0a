//! AES-256 (FIPS-197), bitsliced over eight blocks held in eight 128-bit SIMD registers.
//!
//! Layout (after Käsper and Schwabe, "Faster and Timing-Attack Resistant AES-GCM", CHES 2009):
//! register `j` ("plane j") holds bit `j` of every byte of eight blocks; within the register,
//! byte `k` is AES state byte `k` and bit `i` of that byte belongs to block `i`. So:
//!
//! - SubBytes is one Boolean circuit (Boyar–Peralta, 113 gates) evaluated on the eight
//!   planes: the same AND/XOR instructions run whatever the data, and no table is indexed.
//! - ShiftRows and the row rotations of MixColumns move whole bytes, i.e. they are fixed
//!   `i8x16.shuffle` permutations with constant indices, identical for every key and input.
//! - AddRoundKey is XOR with round keys stored in the same bitsliced form.
//!
//! Nothing here branches on, or computes an address from, key or data, which is what makes
//! the cipher constant time (no cache-timing channel as in table-based AES). The key
//! schedule uses the same S-box circuit.

use core::arch::wasm32::*;

/// Eight blocks in bitsliced form (see the module comment).
pub type Planes = [v128; 8];

pub const ROUNDS: usize = 14;

/// AES-256 round keys in bitsliced form. Keys 1..=14 carry the S-box constant 0x63 folded
/// in (see `sub_bytes`), so the data path never spends instructions on it.
pub struct Aes256 {
    rk: [Planes; ROUNDS + 1],
}

impl Aes256 {
    pub const fn zeroed() -> Self {
        Aes256 { rk: [[ZERO; 8]; ROUNDS + 1] }
    }

    /// Expands `key` (FIPS-197 §5.2, Nk = 8, Nr = 14) into bitsliced round keys.
    pub fn set_key(&mut self, key: &[u8; 32]) {
        let mut w = [0u32; 4 * (ROUNDS + 1)];
        for i in 0..8 {
            w[i] = u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]]);
        }
        // Words are little-endian images of the four key bytes, so RotWord is a rotate right.
        let mut rcon: u32 = 1;
        for i in 8..w.len() {
            let mut t = w[i - 1];
            if i % 8 == 0 {
                t = sub_word(t.rotate_right(8)) ^ rcon;
                rcon = xtime_byte(rcon);
            } else if i % 8 == 4 {
                t = sub_word(t);
            }
            w[i] = w[i - 8] ^ t;
        }
        let not_mask = not_planes_0x63();
        for r in 0..=ROUNDS {
            let k = u32x4(w[4 * r], w[4 * r + 1], w[4 * r + 2], w[4 * r + 3]);
            let mut planes = broadcast_planes(k);
            if r > 0 {
                for j in 0..8 {
                    planes[j] = v128_xor(planes[j], not_mask[j]);
                }
            }
            self.rk[r] = planes;
        }
        wipe_words(&mut w);
    }

    /// Encrypts eight blocks in place (each `v128` one block, bytes in memory order).
    #[inline(always)]
    pub fn encrypt8(&self, b: &mut Planes) {
        transpose(b);
        add_round_key(b, &self.rk[0]);
        for r in 1..ROUNDS {
            sub_bytes(b);
            shift_rows(b);
            mix_columns(b);
            add_round_key(b, &self.rk[r]);
        }
        sub_bytes(b);
        shift_rows(b);
        add_round_key(b, &self.rk[ROUNDS]);
        transpose(b);
    }

    /// Zeroes the round keys with writes the compiler may not drop.
    pub fn wipe(&mut self) {
        for r in 0..=ROUNDS {
            for j in 0..8 {
                // SAFETY: a valid, aligned, exclusive place.
                unsafe { core::ptr::write_volatile(&mut self.rk[r][j], ZERO) };
            }
        }
    }
}

const ZERO: v128 = u64x2(0, 0);

fn xtime_byte(x: u32) -> u32 {
    // Public round constants only: the branch-free form is kept for uniformity.
    ((x << 1) ^ (((x >> 7) & 1) * 0x1b)) & 0xff
}

fn wipe_words(w: &mut [u32]) {
    for x in w.iter_mut() {
        // SAFETY: a valid, aligned, exclusive place.
        unsafe { core::ptr::write_volatile(x, 0) };
    }
}

/// S-box applied to each byte of a word, through the bitsliced circuit (no table).
#[inline(never)]
fn sub_word(x: u32) -> u32 {
    let z = opaque(ZERO);
    let mut q = [z; 8];
    q[0] = u32x4_replace_lane::<0>(z, x);
    transpose(&mut q);
    sub_bytes(&mut q);
    transpose(&mut q);
    let r = u32x4_extract_lane::<0>(opaque(q[0])) ^ 0x6363_6363;
    for p in q.iter_mut() {
        // SAFETY: a valid, aligned, exclusive place.
        unsafe { core::ptr::write_volatile(p, ZERO) };
    }
    r
}

/// The value, through memory the optimiser cannot see into. Without it, LLVM 14 spends
/// minutes tracing which lanes of one extracted word depend on the whole bitsliced circuit.
#[inline(always)]
fn opaque(v: v128) -> v128 {
    let mut cell = ZERO;
    // SAFETY: a local, valid and aligned.
    unsafe {
        core::ptr::write_volatile(&mut cell, v);
        core::ptr::read_volatile(&cell)
    }
}

/// Bitsliced form of a block repeated in all eight lanes: plane j, byte k = 0xff when bit j
/// of byte k is set. A SIMD compare, not a branch.
fn broadcast_planes(k: v128) -> Planes {
    let mut p = [ZERO; 8];
    for j in 0..8 {
        let bit = u8x16_splat(1u8 << j);
        p[j] = i8x16_eq(v128_and(k, bit), bit);
    }
    p
}

/// Planes of the constant 0x63 in every byte: bits 0, 1, 5 and 6.
fn not_planes_0x63() -> Planes {
    broadcast_planes(u8x16_splat(0x63))
}

#[inline(always)]
fn swapmove(lo: &mut v128, hi: &mut v128, n: u32, m: v128) {
    let t = v128_and(v128_xor(u64x2_shr(*lo, n), *hi), m);
    *hi = v128_xor(*hi, t);
    *lo = v128_xor(*lo, u64x2_shl(t, n));
}

/// Transposes the 8x8 bit matrix in every byte position across the eight registers: block
/// `i`, bit `j` <-> plane `j`, bit `i`. Its own inverse.
#[inline(always)]
pub fn transpose(q: &mut Planes) {
    let m1 = u8x16_splat(0x55);
    let m2 = u8x16_splat(0x33);
    let m4 = u8x16_splat(0x0f);
    let [mut q0, mut q1, mut q2, mut q3, mut q4, mut q5, mut q6, mut q7] = *q;
    swapmove(&mut q0, &mut q1, 1, m1);
    swapmove(&mut q2, &mut q3, 1, m1);
    swapmove(&mut q4, &mut q5, 1, m1);
    swapmove(&mut q6, &mut q7, 1, m1);
    swapmove(&mut q0, &mut q2, 2, m2);
    swapmove(&mut q1, &mut q3, 2, m2);
    swapmove(&mut q4, &mut q6, 2, m2);
    swapmove(&mut q5, &mut q7, 2, m2);
    swapmove(&mut q0, &mut q4, 4, m4);
    swapmove(&mut q1, &mut q5, 4, m4);
    swapmove(&mut q2, &mut q6, 4, m4);
    swapmove(&mut q3, &mut q7, 4, m4);
    *q = [q0, q1, q2, q3, q4, q5, q6, q7];
}

#[inline(always)]
fn add_round_key(q: &mut Planes, k: &Planes) {
    for j in 0..8 {
        q[j] = v128_xor(q[j], k[j]);
    }
}

/// The AES S-box minus its constant: returns S(x) ^ 0x63 for every byte of the eight planes.
///
/// The circuit is Boyar and Peralta's depth-16 S-box ("A new combinational logic
/// minimization technique with applications to cryptology", 2009): a linear layer, a
/// GF(2^4)-tower inversion in 32 ANDs, and a linear layer. Its four NOT gates add the
/// constant 0x63; since ShiftRows, MixColumns (2+3+1+1 = 1) and AddRoundKey all carry a
/// byte-constant through unchanged, the constant is added to round keys 1..=14 instead.
/// Inputs u0 (most significant bit) .. u7, i.e. plane 7 .. plane 0.
#[inline(always)]
fn sub_bytes(q: &mut Planes) {
    #[inline(always)]
    fn x(a: v128, b: v128) -> v128 {
        v128_xor(a, b)
    }
    #[inline(always)]
    fn a(a: v128, b: v128) -> v128 {
        v128_and(a, b)
    }
    let u0 = q[7];
    let u1 = q[6];
    let u2 = q[5];
    let u3 = q[4];
    let u4 = q[3];
    let u5 = q[2];
    let u6 = q[1];
    let u7 = q[0];

    // Top linear layer.
    let y14 = x(u3, u5);
    let y13 = x(u0, u6);
    let y9 = x(u0, u3);
    let y8 = x(u0, u5);
    let t0 = x(u1, u2);
    let y1 = x(t0, u7);
    let y4 = x(y1, u3);
    let y12 = x(y13, y14);
    let y2 = x(y1, u0);
    let y5 = x(y1, u6);
    let y3 = x(y5, y8);
    let t1 = x(u4, y12);
    let y15 = x(t1, u5);
    let y20 = x(t1, u1);
    let y6 = x(y15, u7);
    let y10 = x(y15, t0);
    let y11 = x(y20, y9);
    let y7 = x(u7, y11);
    let y17 = x(y10, y11);
    let y19 = x(y10, y8);
    let y16 = x(t0, y11);
    let y21 = x(y13, y16);
    let y18 = x(u0, y16);

    // Shared non-linear middle: inversion in GF(2^8) through GF(2^4).
    let t2 = a(y12, y15);
    let t3 = a(y3, y6);
    let t4 = x(t3, t2);
    let t5 = a(y4, u7);
    let t6 = x(t5, t2);
    let t7 = a(y13, y16);
    let t8 = a(y5, y1);
    let t9 = x(t8, t7);
    let t10 = a(y2, y7);
    let t11 = x(t10, t7);
    let t12 = a(y9, y11);
    let t13 = a(y14, y17);
    let t14 = x(t13, t12);
    let t15 = a(y8, y10);
    let t16 = x(t15, t12);
    let t17 = x(t4, t14);
    let t18 = x(t6, t16);
    let t19 = x(t9, t14);
    let t20 = x(t11, t16);
    let t21 = x(t17, y20);
    let t22 = x(t18, y19);
    let t23 = x(t19, y21);
    let t24 = x(t20, y18);

    let t25 = x(t21, t22);
    let t26 = a(t21, t23);
    let t27 = x(t24, t26);
    let t28 = a(t25, t27);
    let t29 = x(t28, t22);
    let t30 = x(t23, t24);
    let t31 = x(t22, t26);
    let t32 = a(t31, t30);
    let t33 = x(t32, t24);
    let t34 = x(t23, t33);
    let t35 = x(t27, t33);
    let t36 = a(t24, t35);
    let t37 = x(t36, t34);
    let t38 = x(t27, t36);
    let t39 = a(t29, t38);
    let t40 = x(t25, t39);

    let t41 = x(t40, t37);
    let t42 = x(t29, t33);
    let t43 = x(t29, t40);
    let t44 = x(t33, t37);
    let t45 = x(t42, t41);
    let z0 = a(t44, y15);
    let z1 = a(t37, y6);
    let z2 = a(t33, u7);
    let z3 = a(t43, y16);
    let z4 = a(t40, y1);
    let z5 = a(t29, y7);
    let z6 = a(t42, y11);
    let z7 = a(t45, y17);
    let z8 = a(t41, y10);
    let z9 = a(t44, y12);
    let z10 = a(t37, y3);
    let z11 = a(t33, y4);
    let z12 = a(t43, y13);
    let z13 = a(t40, y5);
    let z14 = a(t29, y2);
    let z15 = a(t42, y9);
    let z16 = a(t45, y14);
    let z17 = a(t41, y8);

    // Bottom linear layer (NOT gates omitted: see above).
    let t46 = x(z15, z16);
    let t47 = x(z10, z11);
    let t48 = x(z5, z13);
    let t49 = x(z9, z10);
    let t50 = x(z2, z12);
    let t51 = x(z2, z5);
    let t52 = x(z7, z8);
    let t53 = x(z0, z3);
    let t54 = x(z6, z7);
    let t55 = x(z16, z17);
    let t56 = x(z12, t48);
    let t57 = x(t50, t53);
    let t58 = x(z4, t46);
    let t59 = x(z3, t54);
    let t60 = x(t46, t57);
    let t61 = x(z14, t57);
    let t62 = x(t52, t58);
    let t63 = x(t49, t58);
    let t64 = x(z4, t59);
    let t65 = x(t61, t62);
    let t66 = x(z1, t63);
    let s0 = x(t59, t63);
    let s6 = x(t56, t62);
    let s7 = x(t48, t60);
    let t67 = x(t64, t65);
    let s3 = x(t53, t66);
    let s4 = x(t51, t66);
    let s5 = x(t47, t65);
    let s1 = x(t64, s3);
    let s2 = x(t55, t67);

    q[7] = s0;
    q[6] = s1;
    q[5] = s2;
    q[4] = s3;
    q[3] = s4;
    q[2] = s5;
    q[1] = s6;
    q[0] = s7;
}

/// ShiftRows: row r of the column-major state rotates left by r (FIPS-197 §5.1.2).
/// out[4c + r] = in[4((c + r) mod 4) + r]: a fixed byte permutation (the indices are
/// constants, not data). Written as a swizzle with the index vector read once per call:
/// V8 compiles a constant `i8x16.shuffle` of this shape into a pshufb that rebuilds its
/// mask from two immediates at every use, the swizzle into one add and one pshufb.
#[inline(always)]
fn shift_rows(q: &mut Planes) {
    // SAFETY: a valid, aligned static; volatile so LLVM does not fold it back to a shuffle.
    let m = unsafe { core::ptr::read_volatile(&SHIFT_ROWS) };
    for j in 0..8 {
        q[j] = i8x16_swizzle(q[j], m);
    }
}

static SHIFT_ROWS: v128 = u8x16(0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11);

/// Each byte takes the value one row down in its column: out[4c + r] = in[4c + (r+1) mod 4].
#[inline(always)]
fn rot1(v: v128) -> v128 {
    // A rotation of each 32-bit column by one byte. Shifts, not a byte shuffle: V8 builds the
    // constant mask of a general shuffle anew at every use.
    v128_or(u32x4_shr(v, 8), i32x4_shl(v, 24))
}

/// Two rows down: out[4c + r] = in[4c + (r+2) mod 4].
#[inline(always)]
fn rot2(v: v128) -> v128 {
    i8x16_shuffle::<2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13>(v, v)
}

/// MixColumns (FIPS-197 §5.1.3): b_r = 2a_r + 3a_{r+1} + a_{r+2} + a_{r+3}, computed as
/// b = 2t + rot1(a) + rot2(t) with t = a + rot1(a). Doubling in GF(2^8) mod 0x11b moves
/// planes up by one and folds plane 7 into planes 0, 1, 3 and 4.
#[inline(always)]
fn mix_columns(q: &mut Planes) {
    let u0 = rot1(q[0]);
    let u1 = rot1(q[1]);
    let u2 = rot1(q[2]);
    let u3 = rot1(q[3]);
    let u4 = rot1(q[4]);
    let u5 = rot1(q[5]);
    let u6 = rot1(q[6]);
    let u7 = rot1(q[7]);
    let t0 = v128_xor(q[0], u0);
    let t1 = v128_xor(q[1], u1);
    let t2 = v128_xor(q[2], u2);
    let t3 = v128_xor(q[3], u3);
    let t4 = v128_xor(q[4], u4);
    let t5 = v128_xor(q[5], u5);
    let t6 = v128_xor(q[6], u6);
    let t7 = v128_xor(q[7], u7);
    q[0] = v128_xor(v128_xor(t7, u0), rot2(t0));
    q[1] = v128_xor(v128_xor(v128_xor(t0, t7), u1), rot2(t1));
    q[2] = v128_xor(v128_xor(t1, u2), rot2(t2));
    q[3] = v128_xor(v128_xor(v128_xor(t2, t7), u3), rot2(t3));
    q[4] = v128_xor(v128_xor(v128_xor(t3, t7), u4), rot2(t4));
    q[5] = v128_xor(v128_xor(t4, u5), rot2(t5));
    q[6] = v128_xor(v128_xor(t5, u6), rot2(t6));
    q[7] = v128_xor(v128_xor(t6, u7), rot2(t7));
}
