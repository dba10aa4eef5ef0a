/**
 * A small seeded PRNG (mulberry32) and the pickers the fuzzer and the crash test draw from,
 * so a failing run is reproduced exactly from the seed it prints.
 */
export class Rng {
  private state: number

  constructor(readonly seed: number) {
    this.state = seed >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256)
    return b
  }

  /** Text of `n` characters from `alphabet`. */
  text(n: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~/%+=&;:,!$*()@ '): string {
    let out = ''
    for (let i = 0; i < n; i++) out += alphabet[Math.floor(this.next() * alphabet.length)]
    return out
  }

  /** A string a fuzzer likes: boundaries, unicode, separators, huge numbers, control bytes. */
  nasty(): string {
    return this.pick([
      '', ' ', '0', '-1', '1e309', '18446744073709551616', '9'.repeat(40), 'NaN', 'null', 'undefined', 'true',
      '%', '%zz', '%E2%98', '%00', '%C0%AF', '\u2603', '\ud83d\ude00', 'a'.repeat(2000), '../../etc/passwd',
      '<', '&amp;', ']]>', '"', "'", '\\', '${filename}', '*', ',', ';', '=', '?', '#', '\t', 'é',
      this.text(this.int(1, 40)),
    ])
  }

  /** Mutates text: cut, duplicate, flip, splice in a nasty piece. */
  mutate(s: string): string {
    if (s.length === 0) return this.nasty()
    switch (this.int(0, 5)) {
      case 0:
        return s.slice(0, this.int(0, s.length))
      case 1: {
        const i = this.int(0, s.length)
        return s.slice(0, i) + this.nasty() + s.slice(i)
      }
      case 2: {
        const i = this.int(0, s.length - 1)
        return s.slice(0, i) + String.fromCharCode(this.int(0, 0x7f)) + s.slice(i + 1)
      }
      case 3: {
        const i = this.int(0, s.length)
        const j = this.int(i, Math.min(s.length, i + 50))
        return s.slice(0, j) + s.slice(i, j) + s.slice(j)
      }
      case 4:
        return s + s.slice(0, this.int(0, s.length))
      default: {
        const i = this.int(0, s.length)
        const j = this.int(i, s.length)
        return s.slice(0, i) + s.slice(j)
      }
    }
  }
}

/** The seed of a run: S3SSE_FUZZ_SEED if set, else a fixed one (npm test is reproducible). */
export function seedFromEnv(fallback: number): number {
  const v = process.env.S3SSE_FUZZ_SEED
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : fallback
}

/** S3SSE_SOAK=1 multiplies the bounded counts of npm test by this (a longer run on demand). */
export function soakFactor(): number {
  const v = process.env.S3SSE_SOAK
  if (v === undefined || v === '' || v === '0') return 1
  return /^\d+$/.test(v) && Number(v) > 1 ? Number(v) : 20
}
